import FlareContracts

/// Where the gateway reaches a session's agent.
public enum AgentEndpoint: Sendable, Equatable {
    case unix(path: String)

    /// Parses the `unix:PATH` form agents report.
    public init?(_ text: String) {
        guard text.hasPrefix("unix:"), text.count > 5 else { return nil }
        self = .unix(path: String(text.dropFirst(5)))
    }
}

/// What the gateway asks the control plane: is this (already signature-checked) token still
/// good — not revoked, its user still allowed, its session alive — and where is the agent?
///
/// Embedded in flare-server this is a direct call; a standalone gateway asks over HTTP.
public protocol GatewayBackend: Sendable {
    /// Throws an `APIError` (404, 409, 401…) when the connection must be refused.
    func resolve(_ claims: RuntimeTokenClaims) async throws -> AgentEndpoint
}
