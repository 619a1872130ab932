import FlareSSH
import Foundation
import Logging

/// Serves one SSH connection on its own thread: public-key auth against the session's
/// authorized keys, and a ``SessionChannelHandler`` per session channel.
final class AgentConnectionHandler: SSHServerConnectionDelegate {
    private let authorizedKeys: AuthorizedKeys
    private let environment: ShellEnvironment
    private let activity: AgentActivity
    private var logger: Logger
    private var handlers: [ObjectIdentifier: SessionChannelHandler] = [:]
    var peer = "unknown"

    init(authorizedKeys: AuthorizedKeys, environment: ShellEnvironment, activity: AgentActivity, logger: Logger) {
        self.authorizedKeys = authorizedKeys
        self.environment = environment
        self.activity = activity
        self.logger = logger
    }

    func isAuthorized(user: String, key: SSHKey) -> Bool {
        authorizedKeys.contains(key)
    }

    func authenticationFailed(user: String, key: SSHKey) {
        logger.notice("public key refused", metadata: [
            "connection.peer": "\(peer)", "auth.user": "\(user)", "auth.key": "\(key.fingerprint)",
        ])
    }

    func openSessionChannel(_ channel: SSHChannel) -> (any SSHChannelDelegate)? {
        let handler = SessionChannelHandler(channel: channel, environment: environment, activity: activity,
                                            logger: logger)
        handlers[ObjectIdentifier(channel)] = handler
        return handler
    }

    func connectionTick(_ connection: SSHServerConnection) {
        for handler in handlers.values { handler.tick() }
        handlers = handlers.filter { !$0.value.isClosed }
    }
}
