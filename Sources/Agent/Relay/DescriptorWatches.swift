import FlareSSH
import Foundation

/// The descriptors one handler watches in the connection's event loop and the ones it owns;
/// each owned descriptor is closed exactly once, after the loop has let go of it.
final class DescriptorWatches {
    private unowned let eventLoop: SSHEventLoop
    private var watched: [Int32: Int16] = [:]
    private(set) var owned: Set<Int32>

    init(eventLoop: SSHEventLoop, owned: Set<Int32>) {
        self.eventLoop = eventLoop
        self.owned = owned
    }

    /// Makes the watched set equal `desired`, calling `handler(fd, revents)` on events.
    func update(_ desired: [Int32: Int16], handler: @escaping (Int32, Int16) -> Void) {
        for (fd, events) in desired where watched[fd] != events && owned.contains(fd) {
            watched[fd] = events
            eventLoop.add(descriptor: fd, events: events) { handler(fd, $0) }
        }
        for fd in watched.keys where desired[fd] == nil {
            watched[fd] = nil
            eventLoop.remove(descriptor: fd)
        }
    }

    /// Stops watching `fd` and closes it once the event loop has let go of it.
    func release(_ fd: Int32) {
        guard owned.remove(fd) != nil else { return }
        watched[fd] = nil
        eventLoop.remove(descriptor: fd) { Glibc.close(fd) }
    }

    func releaseAll() {
        owned.forEach(release)
    }
}
