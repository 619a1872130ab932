import FlareSSH
import Foundation
import Logging
import ServiceLifecycle

/// The agent's SSH server: accepts on a Unix or TCP socket and serves each connection on its
/// own OS thread (libssh calls block, so they stay off Swift's cooperative pool).
public final class AgentSSHService: Service, @unchecked Sendable {
    private let listener: SocketListener
    private let server: SSHServer
    private let authorizedKeys: AuthorizedKeys
    private let environment: ShellEnvironment
    private let activity: AgentActivity
    private let logger: Logger
    private let stopState = StopState()
    /// How long running commands get to finish after SIGTERM before clients are disconnected.
    public var gracePeriod: Duration = .seconds(5)
    /// Runs after the grace period, before clients are disconnected (the final snapshot hook).
    public var shutdownHook: @Sendable () async -> Void = {}

    /// Where the service listens (with the real port if 0 was asked for).
    public var address: ListenAddress { listener.address }

    /// Binds the socket and loads the host key; nothing is served until ``run()``.
    public init(
        listen: ListenAddress, hostKeyFile: String, authorizedKeys: AuthorizedKeys, environment: ShellEnvironment,
        activity: AgentActivity = AgentActivity(), logger: Logger
    ) throws {
        self.server = try SSHServer(hostKeyFile: hostKeyFile)
        self.listener = try SocketListener(listen)
        self.authorizedKeys = authorizedKeys
        self.environment = environment
        self.activity = activity
        self.logger = logger
    }

    public func run() async throws {
        let acceptThread = Thread { [self] in acceptLoop() }
        acceptThread.name = "flare-agent-accept"
        acceptThread.start()
        logger.info("serving SSH", metadata: ["listen.address": "\(address)"])
        // Until SIGTERM (or cancellation): then stop accepting, give running commands the grace
        // period, disconnect whoever is left, and run the shutdown hook (the final snapshot) once
        // nothing can write any more.
        try? await gracefulShutdown()
        listener.close()
        logger.info("stopped accepting SSH connections")
        let deadline = ContinuousClock.now + gracePeriod
        while activity.snapshot.openConnections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        stopState.requestStop()
        // Wait for the connection threads to be completely done with libssh before the process
        // exits; exiting under them crashes in libssh's or OpenSSL's teardown.
        let closing = ContinuousClock.now + .seconds(3)
        while stopState.liveThreads > 0 && ContinuousClock.now < closing {
            try? await Task.sleep(for: .milliseconds(20))
        }
        logger.info("SSH service stopped", metadata: ["connections.left": "\(activity.snapshot.openConnections)"])
        await shutdownHook()
    }

    private func acceptLoop() {
        while let fd = listener.accept() {
            stopState.threadStarted()
            let thread = Thread { [self] in
                serve(descriptor: fd)
                stopState.threadFinished()
            }
            thread.name = "flare-ssh-\(fd)"
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }

    private func serve(descriptor: Int32) {
        Self.configureTCP(descriptor)
        let (host, port) = SocketAddress.peer(of: descriptor)
        let handler = AgentConnectionHandler(
            authorizedKeys: authorizedKeys, environment: environment, activity: activity, logger: logger)
        handler.shouldDisconnect = { [stopState] in stopState.isStopping }
        let connection: SSHServerConnection
        do {
            connection = try server.accept(descriptor: descriptor, delegate: handler)
        } catch {
            logger.warning("could not accept SSH connection", metadata: ["error": "\(error)"])
            return
        }
        handler.attach(to: connection, peer: port == 0 ? "unix" : "\(host):\(port)")
        activity.connectionOpened()
        defer { activity.connectionClosed() }
        do {
            try connection.handshake()
        } catch {
            logger.info("SSH handshake failed", metadata: ["connection.peer": "\(handler.peer)", "error": "\(error)"])
            return
        }
        connection.run()
        handler.connectionEnded()
    }
}

extension AgentSSHService {
    /// TCP options for a client socket (no-ops on Unix sockets, where the gateway's WebSocket pings
    /// find dead peers). Keepalives find a peer that vanished without closing in about a minute;
    /// no Nagle, as in sshd, so small replies (sftp statuses, echoes) never wait for a delayed ACK.
    static func configureTCP(_ fd: Int32) {
        var on: Int32 = 1, idle: Int32 = 30, interval: Int32 = 10, count: Int32 = 3
        let size = socklen_t(MemoryLayout<Int32>.size)
        guard setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, size) == 0 else { return }
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPIDLE, &idle, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPINTVL, &interval, size)
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_KEEPCNT, &count, size)
    }
}

/// Set once when the service stops; read by every connection thread.
final class StopState: @unchecked Sendable {
    private let lock = NSLock()
    private var stopping = false
    private var threads = 0

    var isStopping: Bool { lock.withLock { stopping } }
    var liveThreads: Int { lock.withLock { threads } }

    func requestStop() { lock.withLock { stopping = true } }
    func threadStarted() { lock.withLock { threads += 1 } }
    func threadFinished() { lock.withLock { threads -= 1 } }
}
