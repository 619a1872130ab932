import FlareContracts
import FlareSSH
import FlareSystem
import Foundation
import NIOCore

/// One browser terminal: a login shell in a PTY on the agent, reached with libssh on a thread of
/// its own, that outlives its WebSocket so a client can reconnect to it.
final class TerminalShell: @unchecked Sendable {
    enum Event: Sendable {
        case output(ByteBuffer)
        /// The shell ended (exit status when the agent sent one); the stream ends after this.
        case exit(Int32?)
    }

    let id: String
    let claims: RuntimeTokenClaims
    /// Output handed to a client and not yet written before the shell stops reading.
    static let outstandingLimit = 256 * 1024

    private let lock = NSLock()
    private var replay: ReplayBuffer
    private var subscriber: AsyncStream<Event>.Continuation?
    private var subscriberId: UUID?
    private var outstanding = 0
    private var actions: [Action] = []
    /// Input bytes in `actions`: past ``queuedInputLimit`` a client is sending faster than the
    /// session reads (or the session does not read at all) and input is refused.
    private var queuedInput = 0
    static let queuedInputLimit = 1 << 20
    private var stopping = false
    private var ended = false
    /// When the last client went away (nil while one is attached).
    private(set) var detachedAt: ContinuousClock.Instant?
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private enum Action {
        case input([UInt8])
        case resize(cols: Int, rows: Int)
    }

    init(id: String, claims: RuntimeTokenClaims, replayCapacity: Int) throws {
        self.id = id
        self.claims = claims
        replay = ReplayBuffer(capacity: replayCapacity)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SSHError.channel }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Connects to the agent, logs in and opens the shell on a new thread; returns once the shell
    /// runs (or throws why it could not), then keeps relaying until the shell ends or ``terminate()``.
    func start(socketPath: String, hostPublicKey: String, serviceKey: SSHKey, cols: Int, rows: Int,
               onEnd: @escaping @Sendable () -> Void) async throws {
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            let thread = Thread { [self] in
                let client: SSHClientSession
                let channel: SSHClientChannel
                do {
                    client = try SSHClientSession(connectedSocket: try UnixSocket.connect(path: socketPath, what: "the agent's socket"), user: "flare")
                    try client.handshake(expectedHostKey: hostPublicKey)
                    try client.authenticate(with: serviceKey)
                    channel = try client.openShell(term: "xterm-256color", cols: cols, rows: rows)
                } catch {
                    ready.resume(throwing: error)
                    onEnd()
                    return
                }
                ready.resume()
                let status = run(channel, socket: client.socketDescriptor)
                channel.free()
                client.disconnect()
                finish(status)
                onEnd()
            }
            thread.name = "flare-terminal"
            thread.start()
        }
    }

    /// Attaches a client: it gets the kept output first, then everything new. A previous client
    /// is detached (its stream ends).
    func attach() -> (UUID, AsyncStream<Event>) {
        let (stream, continuation) = AsyncStream.makeStream(of: Event.self)
        let id = UUID()
        lock.withLock {
            subscriber?.finish()
            if ended {
                continuation.finish()
                return
            }
            let kept = replay.contents
            if !kept.isEmpty {
                continuation.yield(.output(ByteBuffer(bytes: kept)))
            }
            outstanding = kept.count
            subscriber = continuation
            subscriberId = id
            detachedAt = nil
        }
        wake()
        return (id, stream)
    }

    /// The client went away; the shell keeps running (and its output is kept) for a reconnect.
    func detach(_ id: UUID) {
        lock.withLock {
            guard subscriberId == id, !ended else { return }
            subscriber?.finish()
            subscriber = nil
            outstanding = 0
            detachedAt = .now
        }
        wake()
    }

    /// The attached client wrote `count` bytes of output out; lets the shell read more.
    func written(_ count: Int) {
        let resume = lock.withLock {
            let wasBlocked = outstanding >= Self.outstandingLimit
            outstanding = max(0, outstanding - count)
            return wasBlocked && outstanding < Self.outstandingLimit
        }
        if resume { wake() }
    }

    /// Queues input for the shell; false (nothing queued) when ``queuedInputLimit`` bytes are
    /// already waiting.
    @discardableResult
    func input(_ bytes: [UInt8]) -> Bool {
        guard !bytes.isEmpty else { return true }
        let queued = lock.withLock {
            guard queuedInput + bytes.count <= Self.queuedInputLimit else { return false }
            queuedInput += bytes.count
            actions.append(.input(bytes))
            return true
        }
        if queued { wake() }
        return queued
    }

    func resize(cols: Int, rows: Int) {
        lock.withLock { actions.append(.resize(cols: cols, rows: rows)) }
        wake()
    }

    /// Ends the shell (revocation, expiry, shutdown): the agent sees the client disconnect.
    func terminate() {
        lock.withLock { stopping = true }
        wake()
    }

    var hasEnded: Bool { lock.withLock { ended } }

    private func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)
    }

    /// The relay loop on the shell's thread: apply input and resizes, read output while the client
    /// keeps up, and sleep in `poll` otherwise.
    private func run(_ channel: SSHClientChannel, socket: Int32) -> Int32? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32 * 1024, alignment: 1)
        defer { buffer.deallocate() }
        while true {
            let (pending, stop, canRead) = lock.withLock { () -> ([Action], Bool, Bool) in
                defer {
                    actions.removeAll()
                    queuedInput = 0
                }
                return (actions, stopping, subscriber == nil || outstanding < Self.outstandingLimit)
            }
            if stop { return nil }
            do {
                for action in pending {
                    switch action {
                    case .input(let bytes): try bytes.withUnsafeBytes { try channel.write($0) }
                    case .resize(let cols, let rows): try channel.resize(cols: cols, rows: rows)
                    }
                }
                if canRead {
                    reading: for _ in 0..<16 {
                        switch try channel.readAvailable(into: buffer) {
                        case .data(let count): deliver(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
                        case .wouldBlock: break reading
                        case .endOfFile: return channel.exitStatus
                        }
                    }
                }
            } catch {
                return nil
            }
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: canRead ? socket : -1, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, 1000)
            var drain = [UInt8](repeating: 0, count: 64)
            while Glibc.read(wakeRead, &drain, drain.count) > 0 {}
        }
    }

    private func deliver(_ bytes: UnsafeRawBufferPointer) {
        lock.withLock {
            replay.append(bytes)
            guard let subscriber else { return }
            outstanding += bytes.count
            subscriber.yield(.output(ByteBuffer(bytes: bytes)))
        }
    }

    private func finish(_ status: Int32?) {
        lock.withLock {
            ended = true
            subscriber?.yield(.exit(status))
            subscriber?.finish()
            subscriber = nil
        }
    }
}
