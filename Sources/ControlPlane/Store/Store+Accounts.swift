import FlareContracts
import Foundation
import GRDB

extension Store {
    /// Whether any account exists.
    func hasUsers() async throws -> Bool {
        try await read { try UserRecord.fetchCount($0) > 0 }
    }

    /// A new account and its personal workspace.
    func insertUser(_ user: UserRecord) async throws {
        try await write { db in
            try user.insert(db)
            _ = try Self.insertPersonalWorkspace(db, userId: user.id, email: user.email, at: user.createdAt)
        }
    }

    func user(email: String) async throws -> UserRecord? {
        try await read { try UserRecord.filter(Column("email").collating(.nocase) == email).fetchOne($0) }
    }

    func user(id: String) async throws -> UserRecord? {
        try await read { try UserRecord.fetchOne($0, key: id) }
    }

    func insertAccessToken(_ token: AccessTokenRecord) async throws {
        try await write { try token.insert($0) }
    }

    /// The user and sign-in of a live (unrevoked, unexpired) access token. Every API call asks
    /// this: answered from ``SignInCache`` when it can, else one prepared statement, kept.
    func signedIn(accessTokenHash hash: String, now: Date) async throws -> SignInCache.SignedIn? {
        if let signedIn = signIns.signedIn(tokenHash: hash, now: now) { return signedIn }
        let generation = signIns.generation
        let found = try await read { db -> (SignInCache.SignedIn, Date)? in
            guard let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT users.*, access_tokens.expires_at AS token_expires_at, access_tokens.sign_in_id AS token_sign_in_id
                FROM access_tokens JOIN users ON users.id = access_tokens.user_id
                WHERE access_tokens.token_hash = ? AND access_tokens.revoked_at IS NULL AND access_tokens.expires_at > ?
                """), arguments: [hash, now]) else { return nil }
            return (SignInCache.SignedIn(user: try UserRecord(row: row), signInId: row["token_sign_in_id"]),
                    row["token_expires_at"])
        }
        guard let (signedIn, expiresAt) = found else { return nil }
        signIns.store(signedIn, tokenHash: hash, expiresAt: expiresAt, readAt: generation)
        return signedIn
    }

    func revokeAccessToken(hash: String, at date: Date) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE access_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                           arguments: [date, hash])
        }
    }

    func insertSSHKey(_ key: SSHKeyRecord) async throws {
        try await write { try key.insert($0) }
    }

    /// All the user's keys (an agent authorizes each of them).
    func sshKeys(userId: String) async throws -> [SSHKeyRecord] {
        try await read { try SSHKeyRecord.filter(Column("user_id") == userId).order(Column("created_at")).fetchAll($0) }
    }

    /// The user's keys, oldest first, `limit` at most after the key `cursor`: two statements at most.
    func sshKeys(userId: String, limit: Int, after cursor: String?) async throws -> Page<SSHKeyRecord> {
        try await read { db in
            var request = SSHKeyRecord.filter(Column("user_id") == userId)
            if let cursor {
                guard let start = try request.filter(Column("id") == cursor).fetchOne(db) else {
                    throw StoreError.unknownCursor
                }
                request = request.filter(Column("created_at") > start.createdAt
                    || (Column("created_at") == start.createdAt && Column("id") > start.id))
            }
            let keys = try request.order(Column("created_at"), Column("id")).limit(limit + 1).fetchAll(db)
            let page = Array(keys.prefix(limit))
            return Page(items: page, next: keys.count > limit ? page.last?.id : nil)
        }
    }

    /// Deletes the key if it is the user's. Returns false when there was no such key.
    func deleteSSHKey(userId: String, id: String) async throws -> Bool {
        try await write { db in
            try SSHKeyRecord.filter(Column("user_id") == userId && Column("id") == id).deleteAll(db) > 0
        }
    }

    func audit(userId: String?, action: String, target: String, detail: String = "", workspaceId: String? = nil,
               outcome: String = "success", requestId: String? = nil, address: String? = nil) async throws {
        try await write { db in
            try AuditRecord(id: nil, userId: userId, action: action, target: target, detail: detail, createdAt: Date(),
                            workspaceId: workspaceId, outcome: outcome, requestId: requestId, address: address).insert(db)
        }
    }

    /// A line for what `actor` did, with the request's id and address.
    func audit(_ actor: Caller, action: String, target: String, detail: String = "", workspaceId: String? = nil,
               outcome: String = "success") async throws {
        try await audit(userId: actor.userId, action: action, target: target, detail: detail, workspaceId: workspaceId,
                        outcome: outcome, requestId: actor.requestId, address: actor.address)
    }

}
