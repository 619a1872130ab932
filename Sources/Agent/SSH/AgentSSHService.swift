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
        // Until SIGTERM (or cancellation): then stop accepting.
        try? await gracefulShutdown()
        listener.close()
        logger.info("stopped accepting SSH connections")
    }

    private func acceptLoop() {
        while let fd = listener.accept() {
            let thread = Thread { [self] in serve(descriptor: fd) }
            thread.name = "flare-ssh-\(fd)"
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }

    private func serve(descriptor: Int32) {
        let handler = AgentConnectionHandler(
            authorizedKeys: authorizedKeys, environment: environment, activity: activity, logger: logger)
        let connection: SSHServerConnection
        do {
            connection = try server.accept(descriptor: descriptor, delegate: handler)
        } catch {
            logger.warning("could not accept SSH connection", metadata: ["error": "\(error)"])
            return
        }
        handler.attach(to: connection)
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
