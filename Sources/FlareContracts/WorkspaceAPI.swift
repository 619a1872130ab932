import Foundation

/// A workspace as one of its members sees it.
public struct WorkspaceInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    /// The caller's personal workspace (made at sign-up; it cannot be deleted).
    public var personal: Bool
    /// The caller's role in it: owner, admin, member or viewer.
    public var role: String
    public var createdAt: Date

    public init(id: String, name: String, personal: Bool, role: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.personal = personal
        self.role = role
        self.createdAt = createdAt
    }
}

/// `POST /api/workspaces` and `PATCH /api/workspaces/{workspace}`.
public struct WorkspaceNameRequest: Codable, Sendable {
    public var name: String

    public init(name: String) {
        self.name = name
    }
}

/// A member of a workspace.
public struct WorkspaceMemberInfo: Codable, Sendable, Equatable {
    public var userId: String
    public var email: String
    public var role: String
    public var joinedAt: Date

    public init(userId: String, email: String, role: String, joinedAt: Date) {
        self.userId = userId
        self.email = email
        self.role = role
        self.joinedAt = joinedAt
    }
}

/// One line of a workspace's audit log.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var id: Int64
    public var at: Date
    /// The actor's email (nil for the server itself).
    public var actor: String?
    public var workspaceId: String
    /// `session.create`, `template.promote`, … ; `request.refused` for a change that was refused.
    public var action: String
    public var target: String
    /// `success`, `refused` or `failed`.
    public var outcome: String
    public var requestId: String?
    public var address: String?
    public var detail: String

    public init(id: Int64, at: Date, actor: String?, workspaceId: String, action: String, target: String,
                outcome: String, requestId: String?, address: String?, detail: String) {
        self.id = id
        self.at = at
        self.actor = actor
        self.workspaceId = workspaceId
        self.action = action
        self.target = target
        self.outcome = outcome
        self.requestId = requestId
        self.address = address
        self.detail = detail
    }
}
