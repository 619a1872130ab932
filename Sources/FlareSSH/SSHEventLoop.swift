import CLibSSH
import Foundation

/// A libssh event (poll set) holding one session plus any other descriptors a connection needs,
/// such as a child's pipes or a PTY master.
///
/// Descriptors are removed only between polls: removing a poll entry from inside its own callback
/// frees memory libssh is still using, so ``remove(descriptor:then:)`` defers the work.
public final class SSHEventLoop {
    /// Bit masks for ``add(descriptor:events:handler:)``.
    public static let readable = Int16(POLLIN)
    public static let writable = Int16(POLLOUT)

    private final class Registration {
        let descriptor: Int32
        let handler: (Int16) -> Void
        init(descriptor: Int32, handler: @escaping (Int16) -> Void) {
            self.descriptor = descriptor
            self.handler = handler
        }
    }

    private enum Change {
        case add(Registration, Int16)
        case remove(Int32, () -> Void)
    }

    private let event: ssh_event
    private var registrations: [Int32: Registration] = [:]
    private var pending: [Change] = []

    init() {
        event = ssh_event_new()
    }

    deinit {
        for fd in registrations.keys { ssh_event_remove_fd(event, fd) }
        registrations.removeAll()
        ssh_event_free(event)
    }

    func attach(session: ssh_session) {
        ssh_event_add_session(event, session)
    }

    func detach(session: ssh_session) {
        ssh_event_remove_session(event, session)
    }

    /// Watches `descriptor` from the next poll on; `handler` gets the poll revents.
    public func add(descriptor: Int32, events: Int16, handler: @escaping (Int16) -> Void) {
        pending.append(.add(Registration(descriptor: descriptor, handler: handler), events))
    }

    /// Stops watching `descriptor` after the current poll, then runs `then` (e.g. to close it).
    public func remove(descriptor: Int32, then: @escaping () -> Void = {}) {
        pending.append(.remove(descriptor, then))
    }

    /// Polls once. Returns libssh's status (`SSH_ERROR` when the session failed).
    func poll(timeoutMilliseconds: Int32) -> Int32 {
        applyChanges()
        let rc = ssh_event_dopoll(event, timeoutMilliseconds)
        applyChanges()
        return rc
    }

    /// Applies deferred additions and removals now. Never call it from inside a poll callback.
    public func applyChanges() {
        while !pending.isEmpty {
            switch pending.removeFirst() {
            case .add(let registration, let events):
                if registrations.removeValue(forKey: registration.descriptor) != nil {
                    ssh_event_remove_fd(event, registration.descriptor)
                }
                registrations[registration.descriptor] = registration
                ssh_event_add_fd(event, registration.descriptor, events, { _, revents, userdata in
                    Unmanaged<Registration>.fromOpaque(userdata!).takeUnretainedValue().handler(Int16(revents))
                    return 0
                }, Unmanaged.passUnretained(registration).toOpaque())
            case .remove(let fd, let then):
                if registrations.removeValue(forKey: fd) != nil {
                    ssh_event_remove_fd(event, fd)
                }
                then()
            }
        }
    }
}
