import FlareContracts
import Foundation

/// Workspaces: the places templates and sessions belong to, and who is in them. A workspace the
/// caller is not a member of does not exist for them (404 by name or id).
struct WorkspaceService: Sendable {
    let store: Store

    func list(_ actor: Caller) async throws -> [WorkspaceInfo] {
        try await store.workspaces(userId: actor.userId).map { Self.info($0.workspace, role: $0.role, for: actor) }
    }

    func create(_ actor: Caller, _ request: WorkspaceNameRequest) async throws -> WorkspaceInfo {
        try ResourceName.validate(request.name, what: "a workspace name")
        let workspace = WorkspaceRecord(id: FlareID.make("wsp"), name: request.name, personalOf: nil,
                                        createdBy: actor.userId, createdAt: Date())
        do {
            try await store.insertWorkspace(workspace, owner: actor.userId)
        } catch StoreError.duplicate {
            throw ServiceError.conflict("a workspace named \(request.name) exists", code: "name_taken")
        }
        try await store.audit(actor, action: "workspace.create", target: workspace.id, detail: request.name,
                              workspaceId: workspace.id)
        return Self.info(workspace, role: .owner, for: actor)
    }

    func get(_ actor: Caller, _ reference: String) async throws -> WorkspaceInfo {
        let (workspace, role) = try await authorized(actor, .workspaceRead, reference)
        return Self.info(workspace, role: role, for: actor)
    }

    func rename(_ actor: Caller, _ reference: String, _ request: WorkspaceNameRequest) async throws -> WorkspaceInfo {
        var (workspace, role) = try await authorized(actor, .workspaceRename, reference)
        try ResourceName.validate(request.name, what: "a workspace name")
        do {
            try await store.renameWorkspace(id: workspace.id, to: request.name)
        } catch StoreError.duplicate {
            throw ServiceError.conflict("a workspace named \(request.name) exists", code: "name_taken")
        }
        try await store.audit(actor, action: "workspace.rename", target: workspace.id,
                              detail: "\(workspace.name) -> \(request.name)", workspaceId: workspace.id)
        workspace.name = request.name
        return Self.info(workspace, role: role, for: actor)
    }

    func delete(_ actor: Caller, _ reference: String) async throws {
        let (workspace, _) = try await authorized(actor, .workspaceDelete, reference)
        guard workspace.personalOf == nil else {
            throw ServiceError.conflict("\(workspace.name) is your personal workspace; it cannot be deleted",
                                        code: "personal_workspace")
        }
        guard try await store.deleteEmptyWorkspace(id: workspace.id) else {
            throw ServiceError.conflict("\(workspace.name) still holds templates or sessions; delete them first",
                                        code: "workspace_not_empty")
        }
        try await store.audit(actor, action: "workspace.delete", target: workspace.id, detail: workspace.name)
    }

    func members(_ actor: Caller, _ reference: String) async throws -> [WorkspaceMemberInfo] {
        let (workspace, _) = try await authorized(actor, .workspaceMemberList, reference)
        return try await store.workspaceMembers(workspaceId: workspace.id).map {
            WorkspaceMemberInfo(userId: $0.member.userId, email: $0.email, role: $0.member.role.name,
                                joinedAt: $0.member.createdAt)
        }
    }

    /// The workspace's audit log (admins), newest first.
    func audit(_ actor: Caller, _ reference: String, filter: Store.AuditFilter, limit: Int, before cursor: String?)
        async throws -> Page<AuditEntry>
    {
        let (workspace, _) = try await authorized(actor, .workspaceAuditRead, reference)
        let position: Int64?
        if let cursor {
            guard let id = Int64(cursor) else { throw ServiceError.invalid("cursor is not one of this list's", code: "invalid_cursor") }
            position = id
        } else {
            position = nil
        }
        return try await store.audit(workspaceId: workspace.id, filter: filter, limit: limit, before: position)
    }

    /// The workspace `reference` names once the policy allows `action` there; one the actor is
    /// not a member of is not found.
    private func authorized(_ actor: Caller, _ action: Action, _ reference: String) async throws
        -> (WorkspaceRecord, Role)
    {
        let found = try await store.workspace(reference, userId: actor.userId)
        do {
            try Policy.authorize(actor, action, role: found?.role, createdBy: nil)
        } catch let error as ServiceError where error.kind == .notFound {
            throw ServiceError.notFound("workspace \(reference)")
        }
        return found!
    }

    static func info(_ workspace: WorkspaceRecord, role: Role, for actor: Caller) -> WorkspaceInfo {
        WorkspaceInfo(id: workspace.id, name: workspace.name, personal: workspace.personalOf == actor.userId,
                      role: role.name, createdAt: workspace.createdAt)
    }
}
