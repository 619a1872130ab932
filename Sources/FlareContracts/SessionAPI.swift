import Foundation

/// Where a session is in its life. See DESIGN.md, "Session lifecycle".
public enum SessionState: String, Codable, Sendable, CaseIterable {
    case created, starting, running, stopping, sleeping, failed, deleted
}

/// `POST /api/sessions`: a session named `name` from template `template` (name or id).
public struct SessionCreateRequest: Codable, Sendable {
    public var name: String
    public var template: String

    public init(name: String, template: String) {
        self.name = name
        self.template = template
    }
}

/// A session as the API shows it.
public struct SessionInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var templateId: String
    public var templateName: String
    public var templateVersion: String
    public var state: SessionState
    /// Why the session is in its state (the last transition's reason).
    public var stateReason: String
    /// The session's SSH host key (`ssh-ed25519 AAAA…`), for `known_hosts` pinning.
    public var hostPublicKey: String
    public var lastHeartbeatAt: Date?
    /// The agent's latest activity figures (connections, bytes, last input), from its heartbeat.
    public var activity: AgentHeartbeat?
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, name: String, templateId: String, templateName: String, templateVersion: String,
                state: SessionState, stateReason: String, hostPublicKey: String, lastHeartbeatAt: Date?,
                activity: AgentHeartbeat? = nil, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.name = name
        self.templateId = templateId
        self.templateName = templateName
        self.templateVersion = templateVersion
        self.state = state
        self.stateReason = stateReason
        self.hostPublicKey = hostPublicKey
        self.lastHeartbeatAt = lastHeartbeatAt
        self.activity = activity
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// One lifecycle transition, with its reason.
public struct SessionEvent: Codable, Sendable, Equatable {
    public var id: Int64
    public var sessionId: String
    public var fromState: SessionState?
    public var toState: SessionState
    public var reason: String
    public var createdAt: Date

    public init(id: Int64, sessionId: String, fromState: SessionState?, toState: SessionState, reason: String,
                createdAt: Date) {
        self.id = id
        self.sessionId = sessionId
        self.fromState = fromState
        self.toState = toState
        self.reason = reason
        self.createdAt = createdAt
    }
}

/// `POST /api/sessions/{id}/runtime-token`.
public struct RuntimeTokenRequest: Codable, Sendable {
    public var purpose: RuntimeTokenPurpose

    public init(purpose: RuntimeTokenPurpose) {
        self.purpose = purpose
    }
}

public struct RuntimeTokenResponse: Codable, Sendable {
    public var token: String
    public var sessionId: String
    public var purpose: RuntimeTokenPurpose
    public var expiresAt: Date

    public init(token: String, sessionId: String, purpose: RuntimeTokenPurpose, expiresAt: Date) {
        self.token = token
        self.sessionId = sessionId
        self.purpose = purpose
        self.expiresAt = expiresAt
    }
}

/// `POST /api/sessions/{id}/runtime-tokens/revoke`.
public struct RevokeResponse: Codable, Sendable, Equatable {
    public var revokedTokens: Int
    public var closedConnections: Int

    public init(revokedTokens: Int, closedConnections: Int) {
        self.revokedTokens = revokedTokens
        self.closedConnections = closedConnections
    }
}
