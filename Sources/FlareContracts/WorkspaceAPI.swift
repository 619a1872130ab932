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
