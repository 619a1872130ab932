import FlareClient
import FlareContracts
import Foundation
import Logging
import ServiceLifecycle

/// Long-polls the control plane for commands (snapshot now, restore live) and answers each one.
public struct CommandService: Service {
    let client: ControlPlaneClient
    let snapshots: SessionSnapshots
    let logger: Logger

    public init(client: ControlPlaneClient, snapshots: SessionSnapshots, logger: Logger) {
        self.client = client
        self.snapshots = snapshots
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let command: AgentCommand?
            do {
                command = try await cancelWhenGracefulShutdown { try await client.nextCommand() }
            } catch is CancellationError {
                return
            } catch {
                if Task.isShuttingDownGracefully { return }
                logger.warning("polling for commands failed", metadata: ["error": "\(error)"])
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(2)) }
                continue
            }
            guard let command else { continue }
            let result = await execute(command)
            try? await client.reportResult(result, of: command)
        }
    }

    private func execute(_ command: AgentCommand) async -> AgentCommandResult {
        do {
            switch command.kind {
            case .snapshot:
                guard let stored = try await snapshots.takeAndUpload(reason: "saved on request") else {
                    return AgentCommandResult(succeeded: false, message: "the template persists no paths")
                }
                return AgentCommandResult(succeeded: true, message: "stored", snapshotId: stored.id)
            case .restore:
                guard let reference = command.snapshot else {
                    return AgentCommandResult(succeeded: false, message: "no snapshot named")
                }
                try await snapshots.restore(reference)
                return AgentCommandResult(succeeded: true, message: "restored")
            }
        } catch {
            logger.error("command failed", metadata: ["command.kind": "\(command.kind)", "error": "\(error)"])
            return AgentCommandResult(succeeded: false, message: "\(error)",
                                      status: (error as? FlareClientError)?.status)
        }
    }
}
