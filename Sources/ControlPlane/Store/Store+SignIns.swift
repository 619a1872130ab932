import FlareContracts
import Foundation
import GRDB

/// Sign-ins (signed-in devices) and the rotation of their tokens. Every change is one
/// transaction, so a refresh either hands out its next pair and retires the old token, or does
/// nothing; a reused token ends its sign-in in the same transaction that notices it.
extension Store {
    /// What trading a refresh token came to.
    enum Refresh: Sendable {
        /// The next pair is stored; the traded token is spent.
        case rotated(user: UserRecord, signInId: String)
        /// The token was already spent: its sign-in is ended, with this many runtime tokens.
        case reused(userId: String, signInId: String, runtimeTokens: Int)
        case unknown
        case expired
        /// Its sign-in was ended before (sign-out, revocation, an earlier reuse).
        case signedOut
    }

    /// A new sign-in with its first access and refresh tokens.
    func insertSignIn(_ signIn: SignInRecord, access: AccessTokenRecord, refresh: RefreshTokenRecord) async throws {
        try await write { db in
            try signIn.insert(db)
            try access.insert(db)
            try refresh.insert(db)
        }
    }

    /// The longest a sign-in lasts however often it refreshes: then its device signs in again.
    static let signInLifetime: TimeInterval = 90 * 86400

    /// Trades the refresh token `hash` for `access` and `refresh` (their sign-in is filled in).
    func rotate(refreshTokenHash hash: String, access: AccessTokenRecord, refresh: RefreshTokenRecord,
                address: String, client: String, at now: Date) async throws -> Refresh {
        try await write { db in
            guard let traded = try RefreshTokenRecord.fetchOne(db, key: hash),
                  let signIn = try SignInRecord.fetchOne(db, key: traded.signInId)
            else { return .unknown }
            guard signIn.revokedAt == nil else { return .signedOut }
            guard traded.usedAt == nil else {
                let runtimeTokens = try Self.endSignIn(db, signIn.id, reason: "a refresh token was used twice", at: now)
                return .reused(userId: signIn.userId, signInId: signIn.id, runtimeTokens: runtimeTokens)
            }
            guard traded.expiresAt > now, signIn.createdAt.addingTimeInterval(Self.signInLifetime) > now else {
                return .expired
            }
            guard let user = try UserRecord.fetchOne(db, key: signIn.userId) else { return .unknown }
            try db.execute(sql: "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", arguments: [now, hash])
            var (access, refresh) = (access, refresh)
            access.userId = signIn.userId
            access.signInId = signIn.id
            refresh.signInId = signIn.id
            try access.insert(db)
            try refresh.insert(db)
            try db.execute(sql: "UPDATE sign_ins SET last_used_at = ?, address = ?, client = ? WHERE id = ?",
                           arguments: [now, address, client, signIn.id])
            return .rotated(user: user, signInId: signIn.id)
        }
    }

    /// Ends the user's live sign-in `id`; the number of runtime tokens it revoked, or nil when the
    /// user has no such live sign-in.
    func endSignIn(id: String, userId: String, reason: String, at now: Date) async throws -> Int? {
        try await write { db in
            guard try SignInRecord.filter(Column("id") == id && Column("user_id") == userId && Column("revoked_at") == nil)
                .fetchCount(db) > 0 else { return nil }
            return try Self.endSignIn(db, id, reason: reason, at: now)
        }
    }

    /// Ends every sign-in of the user; the number of runtime tokens revoked with them.
    func endSignIns(userId: String, reason: String, at now: Date) async throws -> Int {
        try await write { db in
            let ids = try String.fetchAll(db, sql: "SELECT id FROM sign_ins WHERE user_id = ? AND revoked_at IS NULL",
                                          arguments: [userId])
            var runtimeTokens = 0
            for id in ids { runtimeTokens += try Self.endSignIn(db, id, reason: reason, at: now) }
            // Tokens from before sign-ins, should any lack one.
            try db.execute(sql: "UPDATE access_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                           arguments: [now, userId])
            return runtimeTokens
        }
    }

    /// The sign-in's access tokens and runtime tokens stop working, and its refresh tokens with
    /// the sign-in itself.
    private static func endSignIn(_ db: Database, _ id: String, reason: String, at now: Date) throws -> Int {
        try db.execute(sql: "UPDATE sign_ins SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
                       arguments: [now, reason, id])
        try db.execute(sql: "UPDATE access_tokens SET revoked_at = ? WHERE sign_in_id = ? AND revoked_at IS NULL",
                       arguments: [now, id])
        try db.execute(sql: "UPDATE runtime_tokens SET revoked_at = ? WHERE sign_in_id = ? AND revoked_at IS NULL",
                       arguments: [now, id])
        return db.changesCount
    }

    /// The user's live sign-ins (not ended, with a token that still works), oldest first,
    /// `limit` at most after the sign-in `cursor`: two statements at most.
    func liveSignIns(userId: String, limit: Int, after cursor: String?, now: Date) async throws -> Page<SignInRecord> {
        try await read { db in
            var request = SignInRecord.filter(Column("user_id") == userId && Column("revoked_at") == nil)
                .filter(sql: """
                    (EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.sign_in_id = sign_ins.id AND r.used_at IS NULL AND r.expires_at > ?)
                     OR EXISTS (SELECT 1 FROM access_tokens a WHERE a.sign_in_id = sign_ins.id AND a.revoked_at IS NULL AND a.expires_at > ?))
                    """, arguments: [now, now])
            if let cursor {
                guard let start = try SignInRecord.filter(Column("user_id") == userId && Column("id") == cursor).fetchOne(db)
                else { throw StoreError.unknownCursor }
                request = request.filter(Column("created_at") > start.createdAt
                    || (Column("created_at") == start.createdAt && Column("id") > start.id))
            }
            let rows = try request.order(Column("created_at"), Column("id")).limit(limit + 1).fetchAll(db)
            let page = Array(rows.prefix(limit))
            return Page(items: page, next: rows.count > limit ? page.last?.id : nil)
        }
    }
}
