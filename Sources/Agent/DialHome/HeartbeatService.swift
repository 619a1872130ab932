import FlareClient
import FlareContracts
import Foundation
import Logging
import ServiceLifecycle

/// Reports ready once the SSH service listens, then sends the activity figures every interval
/// and refreshes the authorized keys from the control plane.
public struct HeartbeatService: Service {
    let client: ControlPlaneClient
    let activity: AgentActivity
    let authorizedKeys: AuthorizedKeys
    let interval: Duration
    /// A directory that exists as long as the session does (under the host runtime, the session's
    /// own); nil when there is none to watch.
    let sessionDirectory: String?
    let logger: Logger

    /// The session is gone for good; the agent must not linger.
    public struct SessionGone: Error, CustomStringConvertible {
        public let description: String
    }

    public init(client: ControlPlaneClient, activity: AgentActivity, authorizedKeys: AuthorizedKeys,
                interval: Duration, sessionDirectory: String? = nil, logger: Logger) {
        self.sessionDirectory = sessionDirectory
        self.client = client
        self.activity = activity
        self.authorizedKeys = authorizedKeys
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        try await client.ready(activity.snapshot)
        logger.info("reported ready")
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            // Ends at once on SIGTERM: the SSH service (and the final snapshot) waits for us.
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            } catch {
                break
            }
            if let sessionDirectory, access(sessionDirectory, F_OK) != 0 {
                throw SessionGone(description: "the session's directory \(sessionDirectory) was removed")
            }
            do {
                try await client.heartbeat(activity.snapshot)
                authorizedKeys.replace(with: try await client.config().authorizedKeys)
            } catch let error as FlareClientError where error.status == 401 {
                // The token is cleared when the session stops, fails or is deleted: this agent no
                // longer serves anything.
                throw SessionGone(description: "the control plane no longer knows this agent's session (\(error))")
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
