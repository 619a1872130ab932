import FlareContracts
import FlareHTTP
import Foundation
import Gateway

/// The gateway's questions answered straight from the store (gateway embedded in flare-server).
struct EmbeddedGatewayBackend: GatewayBackend {
    let store: Store
    /// How long a connection waits for a `starting` session to become `running`.
    let startWait: Duration = .seconds(60)

    func resolve(_ claims: RuntimeTokenClaims) async throws -> AgentEndpoint {
        guard let token = try await store.runtimeToken(id: claims.id), token.revokedAt == nil else {
            throw APIError.unauthorized(RuntimeTokenError.revoked.description, code: RuntimeTokenError.revoked.code)
        }
        let deadline = ContinuousClock.now + startWait
        while true {
            guard let session = try await store.session(id: claims.sessionId), session.ownerId == claims.userId,
                  session.state != .deleted
            else { throw APIError.notFound("session") }
            switch session.state {
            case .running:
                guard let text = session.agentEndpoint, let endpoint = AgentEndpoint(text) else {
                    throw APIError.unavailable("the session's agent has no endpoint yet; try again")
                }
                return endpoint
            case .starting where ContinuousClock.now < deadline:
                try await Task.sleep(for: .milliseconds(100))
            default:
                throw APIError.conflict(
                    "session \(session.name) is \(session.state.rawValue); start it with `flare session start \(session.name)`",
                    code: "session_not_running")
            }
        }
    }
}
