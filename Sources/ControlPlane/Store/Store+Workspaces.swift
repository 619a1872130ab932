import FlareContracts
import Foundation
import GRDB

struct WorkspaceRecord: FlareRecord {
    static let databaseTableName = "workspaces"
    var id: String
    var name: String
    /// The account whose personal workspace this is (made at sign-up; cannot be deleted).
    var personalOf: String?
    var createdBy: String?
    var createdAt: Date
}

struct WorkspaceMemberRecord: FlareRecord {
    static let databaseTableName = "workspace_members"
    var workspaceId: String
    var userId: String
    var role: Role
    var createdAt: Date
}

extension Role: Codable, DatabaseValueConvertible {
    var name: String { String(describing: self) }

    init?(name: String) {
        guard let role = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = role
    }

    init(from decoder: any Decoder) throws {
        let name = try decoder.singleValueContainer().decode(String.self)
        guard let role = Role(name: name) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown role \(name)"))
        }
        self = role
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(name)
    }

    var databaseValue: DatabaseValue { name.databaseValue }

    static func fromDatabaseValue(_ value: DatabaseValue) -> Role? {
        String.fromDatabaseValue(value).flatMap(Role.init(name:))
    }
}

extension Store {
    /// Makes `userId`'s personal workspace, named after the email's local part (made unique), with
    /// them as its owner; its id.
    static func insertPersonalWorkspace(_ db: Database, userId: String, email: String, at date: Date) throws -> String {
        let base = personalWorkspaceName(email: email)
        var name = base
        var suffix = 1
        while try WorkspaceRecord.filter(Column("name").collating(.nocase) == name).fetchCount(db) > 0 {
            suffix += 1
            name = "\(base.prefix(58))-\(suffix)"
        }
        // Named columns, not records: migration 0008 runs this on data directories of its own
        // day, whose tables lack whatever columns later migrations add.
        let id = FlareID.make("wsp")
        try db.execute(sql: """
            INSERT INTO workspaces (id, name, personal_of, created_by, created_at) VALUES (?, ?, ?, ?, ?)
            """, arguments: [id, name, userId, userId, date])
        try db.execute(sql: "INSERT INTO workspace_members (workspace_id, user_id, role, created_at) VALUES (?, ?, ?, ?)",
                       arguments: [id, userId, Role.owner.name, date])
        return id
    }

    /// `Dev.Ops+x@example.com` → `dev-ops-x`: a valid workspace name (1-63 of a-z, 0-9, '-').
    static func personalWorkspaceName(email: String) -> String {
        let local = email.split(separator: "@").first.map(String.init) ?? email
        var name = String(local.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" })
        while name.contains("--") { name = name.replacingOccurrences(of: "--", with: "-") }
        name = String(name.trimmingCharacters(in: CharacterSet(charactersIn: "-")).prefix(50))
        if name.hasSuffix("-") { name.removeLast() }
        return name.isEmpty || name.hasPrefix("wsp-") ? "user" : name
    }

    /// The workspaces `userId` is a member of, with their role in each, by name.
    func workspaces(userId: String) async throws -> [(workspace: WorkspaceRecord, role: Role)] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT workspaces.*, workspace_members.role AS member_role FROM workspaces
                JOIN workspace_members ON workspace_members.workspace_id = workspaces.id
                WHERE workspace_members.user_id = ? ORDER BY workspaces.name
                """, arguments: [userId]).map { (try WorkspaceRecord(row: $0), $0["member_role"] as Role) }
        }
    }

    /// The workspace named (or numbered) `reference` and `userId`'s role in it; nil when there is
    /// none or they are not a member (the same answer, so names cannot be probed).
    func workspace(_ reference: String, userId: String) async throws -> (workspace: WorkspaceRecord, role: Role)? {
        try await read { db in
            try Row.fetchOne(db, sql: """
                SELECT workspaces.*, workspace_members.role AS member_role FROM workspaces
                JOIN workspace_members ON workspace_members.workspace_id = workspaces.id AND workspace_members.user_id = ?
                WHERE workspaces.id = ? OR workspaces.name = ? COLLATE NOCASE
                """, arguments: [userId, reference, reference]).map { (try WorkspaceRecord(row: $0), $0["member_role"] as Role) }
        }
    }

    /// A new shared workspace with `userId` as its owner.
    func insertWorkspace(_ workspace: WorkspaceRecord, owner userId: String) async throws {
        try await write { db in
            try workspace.insert(db)
            try WorkspaceMemberRecord(workspaceId: workspace.id, userId: userId, role: .owner, createdAt: workspace.createdAt)
                .insert(db)
        }
    }

    func renameWorkspace(id: String, to name: String) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE workspaces SET name = ? WHERE id = ?", arguments: [name, id])
        }
    }

    /// Deletes a workspace that holds no templates and no live sessions; false when it holds some.
    func deleteEmptyWorkspace(id: String) async throws -> Bool {
        try await write { db in
            let held = try Int.fetchOne(db, sql: """
                SELECT (SELECT COUNT(*) FROM templates WHERE workspace_id = ?)
                     + (SELECT COUNT(*) FROM sessions WHERE workspace_id = ? AND state != 'deleted')
                """, arguments: [id, id]) ?? 0
            guard held == 0 else { return false }
            try db.execute(sql: "DELETE FROM sessions WHERE workspace_id = ?", arguments: [id])
            try WorkspaceRecord.deleteOne(db, key: id)
            return true
        }
    }

    /// A workspace's members with their emails, by email.
    func workspaceMembers(workspaceId: String) async throws -> [(member: WorkspaceMemberRecord, email: String)] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT workspace_members.*, users.email AS member_email FROM workspace_members
                JOIN users ON users.id = workspace_members.user_id
                WHERE workspace_members.workspace_id = ? ORDER BY users.email
                """, arguments: [workspaceId]).map { (try WorkspaceMemberRecord(row: $0), $0["member_email"] as String) }
        }
    }
}

extension Store {
    /// What to read of a workspace's audit log.
    struct AuditFilter: Sendable {
        var since: Date?
        var actorEmail: String?
        var actionPrefix: String?
    }

    /// The workspace's audit lines, newest first, `limit` at most before the line `cursor`: one statement.
    func audit(workspaceId: String, filter: AuditFilter, limit: Int, before cursor: Int64?) async throws -> Page<AuditEntry> {
        try await read { db in
            var sql = """
                SELECT audit_log.*, users.email AS actor_email FROM audit_log
                LEFT JOIN users ON users.id = audit_log.user_id
                WHERE audit_log.workspace_id = ?
                """
            var arguments: StatementArguments = [workspaceId]
            if let cursor { sql += " AND audit_log.id < ?"; arguments += [cursor] }
            if let since = filter.since { sql += " AND audit_log.created_at >= ?"; arguments += [since] }
            if let email = filter.actorEmail { sql += " AND users.email = ? COLLATE NOCASE"; arguments += [email] }
            if let prefix = filter.actionPrefix {
                sql += " AND substr(audit_log.action, 1, ?) = ?"
                arguments += [prefix.count, prefix]
            }
            sql += " ORDER BY audit_log.id DESC LIMIT ?"
            arguments += [limit + 1]
            let rows = try Row.fetchAll(db, sql: sql, arguments: arguments)
            let entries = try rows.prefix(limit).map { row in
                let record = try AuditRecord(row: row)
                return AuditEntry(id: record.id ?? 0, at: record.createdAt, actor: row["actor_email"],
                                  workspaceId: workspaceId, action: record.action, target: record.target,
                                  outcome: record.outcome, requestId: record.requestId, address: record.address,
                                  detail: record.detail)
            }
            return Page(items: entries, next: rows.count > limit ? entries.last.map { String($0.id) } : nil)
        }
    }
}
