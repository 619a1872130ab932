import Foundation

/// Access taken away: every live connection whose runtime token matches is closed.
///
/// The control plane publishes these to its embedded gateway and streams them to standalone
/// gateways (`GET /gateway/v1/revocations`, one JSON object per line).
public struct Revocation: Codable, Sendable, Equatable {
    public enum Scope: String, Codable, Sendable {
        /// One runtime token, by its id.
        case token
        /// Every token of one session (revoke, stop, delete).
        case session
        /// Every token of one user (logout-all, access lost).
        case user
        /// Every token issued under one sign-in (a device signed out, a refresh token reused).
        case signIn
    }

    public var scope: Scope
    /// The token, session, user or sign-in id.
    public var id: String
    public var reason: String
    /// When the control plane took access away: tokens issued later are not affected.
    public var revokedAt: Date?

    public init(_ scope: Scope, _ id: String, reason: String, revokedAt: Date? = Date()) {
        self.scope = scope
        self.id = id
        self.reason = reason
        self.revokedAt = revokedAt
    }

    /// Whether a token with `claims`, checked before this revocation reached the gateway, was
    /// issued before it (and so loses its access as its connection registers).
    public func precedes(_ claims: RuntimeTokenClaims) -> Bool {
        guard let revokedAt else { return false }
        return matches(claims) && claims.issuedAt <= revokedAt
    }

    /// Whether a connection opened with `claims` loses its access.
    public func matches(_ claims: RuntimeTokenClaims) -> Bool {
        switch scope {
        case .token: claims.id == id
        case .session: claims.sessionId == id
        case .user: claims.userId == id
        case .signIn: claims.signInId == id
        }
    }
}

/// One line of the revocation stream: a revocation, or a keepalive so a dead stream is noticed.
public struct RevocationStreamLine: Codable, Sendable, Equatable {
    public var revocation: Revocation?
    /// Set on keepalive lines.
    public var keepalive: Bool?

    public init(revocation: Revocation? = nil, keepalive: Bool? = nil) {
        self.revocation = revocation
        self.keepalive = keepalive
    }
}

/// `POST /gateway/v1/register`: a standalone gateway announcing itself (gateway token).
public struct GatewayRegisterRequest: Codable, Sendable, Equatable {
    /// The OpenSSH public key the gateway's terminal bridge logs in to agents with.
    public var serviceKey: String
    public var name: String

    public init(serviceKey: String, name: String) {
        self.serviceKey = serviceKey
        self.name = name
    }
}

/// What a gateway needs from the control plane to check tokens itself.
public struct GatewayRegisterResponse: Codable, Sendable, Equatable {
    /// The raw Ed25519 public key runtime tokens are signed with, base64.
    public var runtimeTokenPublicKey: String

    public init(runtimeTokenPublicKey: String) {
        self.runtimeTokenPublicKey = runtimeTokenPublicKey
    }
}

/// `POST /gateway/v1/resolve`: is this signature-checked token still good, and where is the agent?
public struct GatewayResolveRequest: Codable, Sendable, Equatable {
    public var token: String

    public init(token: String) {
        self.token = token
    }
}

public struct GatewayResolveResponse: Codable, Sendable, Equatable {
    /// `unix:PATH`.
    public var endpoint: String
    /// The session's host public key (`ssh-ed25519 AAAA…`), which the terminal bridge pins.
    public var hostPublicKey: String
    /// Set when the session had to be woken for this connection: how long that took.
    public var wakeSeconds: Double?

    public init(endpoint: String, hostPublicKey: String, wakeSeconds: Double? = nil) {
        self.endpoint = endpoint
        self.hostPublicKey = hostPublicKey
        self.wakeSeconds = wakeSeconds
    }
}

/// `POST /gateway/v1/check`: which of these token ids have lost access (after a stream gap).
public struct GatewayCheckRequest: Codable, Sendable, Equatable {
    public var tokenIds: [String]

    public init(tokenIds: [String]) {
        self.tokenIds = tokenIds
    }
}

public struct GatewayCheckResponse: Codable, Sendable, Equatable {
    public var revokedTokenIds: [String]

    public init(revokedTokenIds: [String]) {
        self.revokedTokenIds = revokedTokenIds
    }
}

/// JSON text frames on `/gateway/terminal/{session}`. Binary frames carry raw terminal bytes both
/// ways; text frames carry these.
///
/// Client → gateway: `{"type":"resize","cols":120,"rows":40}`, `{"type":"input","data":"ls\r"}`.
/// Gateway → client: `{"type":"ready","terminal":"trm_…","resumed":false}` first, then
/// `{"type":"exit","status":0}` when the shell ends.
public enum TerminalMessage: Codable, Sendable, Equatable {
    case resize(cols: Int, rows: Int)
    case input(String)
    /// The shell `terminal` is attached; `resumed` when it is one kept from an earlier connection.
    case ready(terminal: String, resumed: Bool)
    /// The shell ended with `status` (none when a signal ended it).
    case exit(status: Int32?)

    private enum CodingKeys: String, CodingKey {
        case type, cols, rows, data, terminal, resumed, status
    }

    /// The `type` on the wire.
    public var type: String {
        switch self {
        case .resize: "resize"
        case .input: "input"
        case .ready: "ready"
        case .exit: "exit"
        }
    }

    /// Throws for an unknown `type` or a message without its fields.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "resize":
            self = .resize(cols: try container.decode(Int.self, forKey: .cols),
                           rows: try container.decode(Int.self, forKey: .rows))
        case "input":
            self = .input(try container.decode(String.self, forKey: .data))
        case "ready":
            self = .ready(terminal: try container.decode(String.self, forKey: .terminal),
                          resumed: try container.decode(Bool.self, forKey: .resumed))
        case "exit":
            self = .exit(status: try container.decodeIfPresent(Int32.self, forKey: .status))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container,
                                                   debugDescription: "unknown terminal message type \(other)")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(type, forKey: .type)
        switch self {
        case .resize(let cols, let rows):
            try container.encode(cols, forKey: .cols)
            try container.encode(rows, forKey: .rows)
        case .input(let text):
            try container.encode(text, forKey: .data)
        case .ready(let terminal, let resumed):
            try container.encode(terminal, forKey: .terminal)
            try container.encode(resumed, forKey: .resumed)
        case .exit(let status):
            try container.encodeIfPresent(status, forKey: .status)
        }
    }

    /// The message as one compact JSON text.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// A gateway's registered service key, as `GET /gateway/v1/keys` lists it. Agents trust every
/// registered key for browser terminals, so an operator removes the keys of retired gateways.
public struct GatewayKeyInfo: Codable, Sendable, Equatable {
    public var name: String
    /// `SHA256:…`, as `ssh-keygen -lf` prints it.
    public var fingerprint: String
    public var registeredAt: Date

    public init(name: String, fingerprint: String, registeredAt: Date) {
        self.name = name
        self.fingerprint = fingerprint
        self.registeredAt = registeredAt
    }
}

/// `POST /gateway/v1/keys/remove`: forget a gateway's service key (agents drop it at their next
/// heartbeat).
public struct GatewayKeyRemoveRequest: Codable, Sendable, Equatable {
    public var fingerprint: String

    public init(fingerprint: String) {
        self.fingerprint = fingerprint
    }
}
