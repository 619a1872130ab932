import FlareContracts
import Foundation
import Hummingbird
import NIOCore

/// The agent's dial-home API, authenticated with the per-session agent token: adapters over
/// ``AgentService``.
extension ControlPlaneAPI {
    func addAgentRoutes(to group: RouterGroup<AgentRequestContext>) {
        group.on(Endpoints.Agent.register) { _, context, body in
            context.logger.info("agent registered", metadata: [
                "agent.version": "\(body.agentVersion)", "agent.pid": "\(body.pid)",
                "agent.endpoint": "\(body.sshEndpoint)",
            ])
            try await agents.registered(context.agent)
            return .noContent
        }

        group.on(Endpoints.Agent.config) { _, context in
            .ok(try await agents.config(context.agent))
        }

        group.on(Endpoints.Agent.ready) { _, context, activity in
            try await agents.ready(context.agent, activity)
            return .noContent
        }

        group.on(Endpoints.Agent.failed) { _, context, failure in
            await agents.failed(context.agent, failure)
            return .noContent
        }

        group.on(Endpoints.Agent.heartbeat) { _, context, activity in
            try await agents.heartbeat(context.agent, activity)
            return .noContent
        }

        // A long poll: 204 when no command came within 25 s.
        group.on(Endpoints.Agent.nextCommand) { _, context in
            guard let command = await agents.nextCommand(context.agent) else { return .noContent }
            return .ok(command)
        }

        group.on(Endpoints.Agent.commandResult) { _, context, result in
            try await agents.finish(context.agent, command: try context.parameters.require("id"), result)
            return .noContent
        }
    }
}
