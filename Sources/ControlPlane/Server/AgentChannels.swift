import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// One control channel per session: the agent API on a Unix socket of its own, in a directory the
/// server owns (`<data>/control/<session>/agent.sock`), mounted read-only into that session alone.
///
/// The socket answers only that session's agent routes: no user API, gateway API, metrics or
/// other session's routes, and a token of another session is refused even if it leaked.
final class AgentChannels: @unchecked Sendable {
    private let directory: URL
    private let makeRouter: @Sendable (String) -> Router<FlareRequestContext>
    private let logger: Logger
    private let lock = NSLock()
    private var running: [String: ServiceGroup] = [:]

    init(directory: URL, logger: Logger, makeRouter: @escaping @Sendable (String) -> Router<FlareRequestContext>) {
        self.directory = directory
        self.logger = logger
        self.makeRouter = makeRouter
    }

    /// The directory holding the session's socket (the runtime mounts or binds it).
    func channelDirectory(_ sessionId: String) -> URL {
        directory.appendingPathComponent(sessionId)
    }

    /// The socket's path on the host.
    func socketPath(_ sessionId: String) -> String {
        channelDirectory(sessionId).appendingPathComponent("agent.sock").path
    }

    /// The URL an agent dials for `socketPath` (as it sees the path).
    static func url(socketPath: String) -> String {
        "http+unix://" + (socketPath.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socketPath)
    }

    /// Opens the session's channel if it is not open; returns once the socket accepts connections.
    /// `owner`, when given, gets the directory (an agent running as another uid than the server).
    func open(_ sessionId: String, owner: uid_t? = nil) async throws {
        let folder = channelDirectory(sessionId)
        if lock.withLock({ running[sessionId] != nil }) {
            // Still open from an earlier run: this run's agent may be another uid.
            if let owner { chown(folder.path, owner, getegid()) }
            return
        }
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(directory.path, 0o700)
        // A folder left by an earlier run is kept, only its socket replaced: a live agent that
        // run started has this very directory bound into its sandbox or container, and a new one
        // in its place would leave the agent unable to dial home (ENOENT) until it is restarted.
        var info = stat()
        if lstat(folder.path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR,
           info.st_uid == geteuid() || info.st_uid == owner {
            unlink(socketPath(sessionId))
            chmod(folder.path, 0o700)
        } else {
            try? fm.removeItem(at: folder)
            try fm.createDirectory(at: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        }
        if let owner { chown(folder.path, owner, getegid()) }
        let path = socketPath(sessionId)
        let listening = AsyncStream.makeStream(of: Bool.self)
        let application = Application(
            router: makeRouter(sessionId),
            configuration: .init(address: .unixDomainSocket(path: path), serverName: "flare-server"),
            onServerRunning: { _ in
                // The directory (0700) is what keeps others out; the socket itself must accept the
                // agent, which may run as another uid (container root, a sandbox uid).
                chmod(path, 0o666)
                listening.continuation.yield(true)
                listening.continuation.finish()
            },
            logger: logger)
        // Closed by graceful shutdown, never by cancellation: the request that ends a session (an
        // agent reporting failure) finishes and gets its answer.
        let group = ServiceGroup(configuration: .init(services: [application], logger: logger))
        Task {
            do {
                try await group.run()
            } catch {
                self.logger.warning("agent channel ended", metadata: ["session.id": "\(sessionId)", "error": "\(error)"])
            }
            listening.continuation.finish()
        }
        lock.withLock { running[sessionId] = group }
        var started = false
        for await value in listening.stream { started = value }
        guard started else {
            close(sessionId)
            throw RuntimeDriverError(description: "could not open the agent channel at \(path)")
        }
    }

    /// Closes the session's channel (requests in flight finish) and removes its socket.
    func close(_ sessionId: String) {
        let group = lock.withLock { running.removeValue(forKey: sessionId) }
        try? FileManager.default.removeItem(at: channelDirectory(sessionId))
        guard let group else { return }
        Task { await group.triggerGracefulShutdown() }
    }

    /// Closes every channel (server shutdown).
    func closeAll() {
        let groups = lock.withLock { () -> [ServiceGroup] in
            defer { running.removeAll() }
            return Array(running.values)
        }
        for group in groups {
            Task { await group.triggerGracefulShutdown() }
        }
    }
}
