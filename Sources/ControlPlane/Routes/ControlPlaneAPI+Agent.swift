import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird

extension ControlPlaneAPI {
    /// The agent's dial-home API, authenticated with the per-session agent token.
    func addAgentRoutes(to group: RouterGroup<FlareRequestContext>) {
        group.post("/register") { request, context -> HTTPResponse.Status in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            let body = try await request.decodeJSON(AgentRegisterRequest.self, context: context)
            context.logger.info("agent registered", metadata: [
                "agent.version": "\(body.agentVersion)", "agent.pid": "\(body.pid)",
                "agent.endpoint": "\(body.sshEndpoint)",
            ])
            try await store.updateSession(id: session.id) { $0.lastHeartbeatAt = Date() }
            return .noContent
        }

        group.get("/config") { _, context -> AgentConfig in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            // The owner's keys, and the gateways' service keys for browser terminals.
            let keys = try await store.sshKeys(userId: session.ownerId).map(\.publicKey)
                + store.gatewayServiceKeys()
            let manifest = try await store.templateVersion(id: session.templateVersionId)?.manifest
            let latest = try await session.latestSnapshotId.asyncFlatMap { try await store.snapshot(id: $0) }
            return AgentConfig(
                sessionId: session.id, hostPrivateKey: session.hostPrivateKey, authorizedKeys: keys,
                env: manifest?.env ?? [:], persistedPaths: manifest?.persistedPaths ?? [],
                heartbeatIntervalSeconds: agentHeartbeatSeconds, restoreSnapshot: latest?.reference)
        }

        group.post("/ready") { request, context -> HTTPResponse.Status in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            try await recordHeartbeat(request, context: context, sessionId: session.id)
            try await lifecycle.agentReady(session.id)
            return .noContent
        }

        group.post("/failed") { request, context -> HTTPResponse.Status in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            let failure = try await request.decodeJSON(AgentFailure.self, context: context)
            await lifecycle.agentExited(session.id, description: String(failure.reason.prefix(500)))
            return .noContent
        }

        group.post("/heartbeat") { request, context -> HTTPResponse.Status in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            try await recordHeartbeat(request, context: context, sessionId: session.id)
            return .noContent
        }
    }

    private func recordHeartbeat(_ request: Request, context: FlareRequestContext, sessionId: String) async throws {
        let heartbeat = try await request.decodeJSON(AgentHeartbeat.self, context: context)
        let json = String(decoding: try FlareJSON.encoder().encode(heartbeat), as: UTF8.self)
        try await store.updateSession(id: sessionId) {
            $0.lastHeartbeatAt = Date()
            $0.activityJson = json
        }
    }
}

extension Optional {
    func asyncFlatMap<U>(_ transform: (Wrapped) async throws -> U?) async rethrows -> U? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
