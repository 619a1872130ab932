import FlareSSH
import Foundation
import Logging

/// Serves one SSH connection on its own thread: public-key auth against the session's
/// authorized keys, a ``SessionChannelHandler`` per session channel, and forwarding.
final class AgentConnectionHandler: SSHServerConnectionDelegate {
    private let authorizedKeys: AuthorizedKeys
    private let environment: ShellEnvironment
    private let activity: AgentActivity
    private var logger: Logger
    private var handlers: [ObjectIdentifier: any ChannelTicking] = [:]
    private var forwarding: ConnectionForwarding?
    private var agentSocket: String?
    var peer = "unknown"
    /// Polled between turns of the event loop: true ends the connection (agent shutting down).
    var shouldDisconnect: () -> Bool = { false }

    init(authorizedKeys: AuthorizedKeys, environment: ShellEnvironment, activity: AgentActivity, logger: Logger) {
        self.authorizedKeys = authorizedKeys
        self.environment = environment
        self.activity = activity
        self.logger = logger
    }

    /// Called once the connection exists, before its event loop runs.
    func attach(to connection: SSHServerConnection, peer: String) {
        self.peer = peer
        logger[metadataKey: "connection.peer"] = "\(peer)"
        forwarding = ConnectionForwarding(eventLoop: connection.eventLoop, activity: activity, logger: logger,
                                          user: environment.user) {
            [weak self] handler in self?.handlers[ObjectIdentifier(handler)] = handler
        }
    }

    func isAuthorized(user: String, key: SSHKey) -> Bool {
        authorizedKeys.contains(key)
    }

    func authenticationFailed(user: String, key: SSHKey) {
        logger.notice("public key refused", metadata: ["auth.user": "\(user)", "auth.key": "\(key.fingerprint)"])
    }

    func openSessionChannel(_ channel: SSHChannel) -> (any SSHChannelDelegate)? {
        let handler = SessionChannelHandler(channel: channel, environment: environment, activity: activity,
                                            logger: logger)
        handler.connectionVariables = { [weak self] in
            self?.agentSocket.map { ["SSH_AUTH_SOCK": $0] } ?? [:]
        }
        handler.onAgentForwardingRequest = { [weak self] in
            guard let self else { return false }
            if agentSocket == nil { agentSocket = forwarding?.agentSocketPath() }
            return agentSocket != nil
        }
        handlers[ObjectIdentifier(handler)] = handler
        return handler
    }

    func directTCPIPRequested(_ request: ForwardingRequest) -> ((SSHChannel) -> any SSHChannelDelegate)? {
        forwarding?.directTCPIP(request)
    }

    func remoteForwardRequested(address: String, port: Int) -> Int? {
        forwarding?.remoteForward(address: address, port: port)
    }

    func remoteForwardCancelled(address: String, port: Int) {
        forwarding?.cancelRemoteForward(port: port)
    }

    func connectionTick(_ connection: SSHServerConnection) {
        if shouldDisconnect() {
            connection.disconnect()
            return
        }
        forwarding?.tick(connection)
        for handler in handlers.values { handler.tick() }
        handlers = handlers.filter { !$0.value.isClosed }
    }

    /// The connection is over: close listeners and sockets it opened.
    func connectionEnded() {
        forwarding?.close()
        forwarding = nil
    }
}
