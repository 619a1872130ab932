import FlareContracts
import Foundation
import Hummingbird
import NIOCore

/// The agent's dial-home API, authenticated with the per-session agent token: adapters over
/// ``AgentService``.
extension ControlPlaneAPI {
    func addAgentRoutes(to group: RouterGroup<AgentRequestContext>) {
        group.post("/register") { request, context -> HTTPResponse.Status in
            let body = try await request.decodeJSON(AgentRegisterRequest.self, context: context)
            context.logger.info("agent registered", metadata: [
                "agent.version": "\(body.agentVersion)", "agent.pid": "\(body.pid)",
                "agent.endpoint": "\(body.sshEndpoint)",
            ])
            try await agents.registered(context.agent)
            return .noContent
        }

        group.get("/config") { _, context -> AgentConfig in
            try await agents.config(context.agent)
        }

        group.post("/ready") { request, context -> HTTPResponse.Status in
            try await agents.ready(context.agent, try await request.decodeJSON(AgentHeartbeat.self, context: context))
            return .noContent
        }

        group.post("/failed") { request, context -> HTTPResponse.Status in
            await agents.failed(context.agent, try await request.decodeJSON(AgentFailure.self, context: context))
            return .noContent
        }

        group.post("/heartbeat") { request, context -> HTTPResponse.Status in
            try await agents.heartbeat(context.agent, try await request.decodeJSON(AgentHeartbeat.self, context: context))
            return .noContent
        }

        // A long poll: 204 when no command came within 25 s.
        group.get("/commands") { _, context -> Response in
            guard let command = await agents.nextCommand(context.agent) else { return Response(status: .noContent) }
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: try FlareJSON.encoder().encode(command))))
        }

        group.post("/commands/{id}/result") { request, context -> HTTPResponse.Status in
            let result = try await request.decodeJSON(AgentCommandResult.self, context: context)
            try await agents.finish(context.agent, command: try context.parameters.require("id"), result)
            return .noContent
        }
    }
}
