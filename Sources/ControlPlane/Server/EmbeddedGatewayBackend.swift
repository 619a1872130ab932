import FlareContracts
import FlareHTTP
import Foundation
import Gateway

/// The gateway's questions answered straight from the store (gateway embedded in flare-server).
struct EmbeddedGatewayBackend: GatewayBackend {
    let store: Store
    let lifecycle: SessionLifecycle
    /// How long a connection waits for a `starting` session to become `running`.
    let startWait: Duration = .seconds(60)

    func resolve(_ claims: RuntimeTokenClaims, token: String) async throws -> ResolvedSession {
        guard let token = try await store.runtimeToken(id: claims.id), token.revokedAt == nil else {
            throw APIError.unauthorized(RuntimeTokenError.revoked.description, code: RuntimeTokenError.revoked.code)
        }
        let started = ContinuousClock.now
        let deadline = started + startWait
        var woke = false
        while true {
            guard let session = try await store.session(id: claims.sessionId), session.ownerId == claims.userId,
                  session.state != .deleted
            else { throw APIError.notFound("session") }
            switch session.state {
            case .running:
                guard let text = session.agentEndpoint, let endpoint = AgentEndpoint(text) else {
                    throw APIError.unavailable("the session's agent has no endpoint yet; try again")
                }
                return ResolvedSession(endpoint: endpoint, hostPublicKey: session.hostPublicKey,
                                       wakeDuration: woke ? ContinuousClock.now - started : nil)
            case .starting where ContinuousClock.now < deadline:
                woke = true
                try await Task.sleep(for: .milliseconds(50))
            case .sleeping, .created:
                // Wake on connect; concurrent connections share the one wake (start is serialized
                // per session and a second start of a starting session changes nothing).
                woke = true
                _ = try await lifecycle.start(session.id, reason: "woken by a connection (\(claims.purpose.rawValue))")
            default:
                throw APIError.conflict(
                    "session \(session.name) is \(session.state.rawValue); start it with `flare session start \(session.name)`",
                    code: "session_not_running")
            }
        }
    }
}
