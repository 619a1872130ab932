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
    let logger: Logger

    public init(client: ControlPlaneClient, activity: AgentActivity, authorizedKeys: AuthorizedKeys,
                interval: Duration, logger: Logger) {
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
            do {
                try await client.heartbeat(activity.snapshot)
                authorizedKeys.replace(with: try await client.config().authorizedKeys)
            } catch {
                logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
