import FlareContracts

/// Where the gateway reaches a session's agent.
public enum AgentEndpoint: Sendable, Equatable {
    case unix(path: String)

    /// Parses the `unix:PATH` form agents report.
    public init?(_ text: String) {
        guard text.hasPrefix("unix:"), text.count > 5 else { return nil }
        self = .unix(path: String(text.dropFirst(5)))
    }

    public var description: String { "unix:\(socketPath)" }

    /// The agent's Unix socket.
    public var socketPath: String {
        switch self {
        case .unix(let path): path
        }
    }
}

/// A session the gateway may connect to.
public struct ResolvedSession: Sendable, Equatable {
    public var endpoint: AgentEndpoint
    /// `ssh-ed25519 AAAA…`: the terminal bridge checks the agent's host key against it.
    public var hostPublicKey: String
    /// Set when the session had to be woken first, with how long that took.
    public var wakeDuration: Duration?

    public init(endpoint: AgentEndpoint, hostPublicKey: String, wakeDuration: Duration? = nil) {
        self.endpoint = endpoint
        self.hostPublicKey = hostPublicKey
        self.wakeDuration = wakeDuration
    }
}

/// What the gateway asks the control plane: is this (already signature-checked) token still
/// good — not revoked, its user still allowed, its session alive — and where is the agent?
///
/// Embedded in flare-server this is a direct call; a standalone gateway asks over HTTP
/// (``ControlPlaneLink``).
public protocol GatewayBackend: Sendable {
    /// Throws an `APIError` (404, 409, 401…) when the connection must be refused. Wakes a
    /// sleeping session first.
    func resolve(_ claims: RuntimeTokenClaims, token: String) async throws -> ResolvedSession
}
