@testable import ControlPlane
import FlareContracts
import Foundation
import GRDB
import Testing

@Suite struct StoreTests {
    func makeStore() throws -> (Store, TemporaryDirectory) {
        let directory = try TemporaryDirectory()
        return (try Store(path: directory.path("flare.sqlite")), directory)
    }

    func user(_ email: String) -> UserRecord {
        UserRecord(id: FlareID.make("usr"), email: email, passwordHash: "x", createdAt: Date())
    }

    @Test func migrationsApplyOnceAndSurviveReopening() async throws {
        let directory = try TemporaryDirectory()
        let first = try Store(path: directory.path("flare.sqlite"))
        #expect(try first.appliedMigrations() == ["0001_accounts_templates_sessions", "0002_snapshots", "0003_gateways", "0004_template_builds", "0005_list_indexes", "0006_sign_ins", "0007_device_authorizations", "0008_workspaces", "0009_audit"])
        let reopened = try Store(path: directory.path("flare.sqlite"))
        #expect(try reopened.appliedMigrations() == ["0001_accounts_templates_sessions", "0002_snapshots", "0003_gateways", "0004_template_builds", "0005_list_indexes", "0006_sign_ins", "0007_device_authorizations", "0008_workspaces", "0009_audit"])
    }

    /// A data directory from before sign-ins: its live access token keeps working until it
    /// expires, now as a sign-in of its own that is listed and can be ended; a revoked one is not carried over.
    @Test func tokensFromBeforeSignInsBecomeSignIns() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("flare.sqlite")
        let now = Date()
        do {
            let old = try DatabaseQueue(path: path)
            try Migrations.migrator.migrate(old, upTo: "0005_list_indexes")
            try await old.write { db in
                try db.execute(sql: "INSERT INTO users (id, email, password_hash, created_at) VALUES ('usr_1', 'a@b.co', 'x', ?)",
                               arguments: [now])
                for (hash, revoked) in [("live", nil), ("gone", now)] as [(String, Date?)] {
                    try db.execute(sql: """
                        INSERT INTO access_tokens (token_hash, user_id, created_at, expires_at, revoked_at)
                        VALUES (?, 'usr_1', ?, ?, ?)
                        """, arguments: [hash, now, now.addingTimeInterval(86400), revoked])
                }
            }
        }
        let store = try Store(path: path)
        let signedIn = try #require(try await store.signedIn(accessTokenHash: "live", now: now))
        #expect(signedIn.user.id == "usr_1")
        let signInId = try #require(signedIn.signInId)
        #expect(try await store.signedIn(accessTokenHash: "gone", now: now) == nil)
        let listed = try await store.liveSignIns(userId: "usr_1", limit: 10, after: nil, now: now)
        #expect(listed.items.map(\.id) == [signInId])
        #expect(try await store.endSignIn(id: signInId, userId: "usr_1", reason: "test", at: now) == 0)
        #expect(try await store.signedIn(accessTokenHash: "live", now: now) == nil)
    }

    /// A refresh token works once, within its own life and its sign-in's (90 days however often
    /// it refreshes); a spent one ends the sign-in.
    @Test func refreshTokensRotateOnceAndNotPastTheSignInsLifetime() async throws {
        let (store, _directory) = try makeStore()
        _ = _directory
        let owner = user("a@b.co")
        try await store.insertUser(owner)
        let now = Date()
        func signIn(_ id: String, createdAt: Date) async throws {
            try await store.insertSignIn(
                SignInRecord(id: id, userId: owner.id, createdAt: createdAt, lastUsedAt: createdAt, address: "", client: ""),
                access: AccessTokenRecord(tokenHash: "a-\(id)", userId: owner.id, createdAt: createdAt,
                                          expiresAt: now.addingTimeInterval(900), signInId: id),
                refresh: RefreshTokenRecord(tokenHash: "r-\(id)", signInId: id, createdAt: now,
                                            expiresAt: now.addingTimeInterval(86400)))
        }
        func next(_ n: Int) -> (AccessTokenRecord, RefreshTokenRecord) {
            (AccessTokenRecord(tokenHash: "a\(n)", userId: "", createdAt: now, expiresAt: now.addingTimeInterval(900)),
             RefreshTokenRecord(tokenHash: "r\(n)", signInId: "", createdAt: now, expiresAt: now.addingTimeInterval(86400)))
        }
        try await signIn("sgn_young", createdAt: now)
        var (access, refresh) = next(1)
        guard case .rotated = try await store.rotate(refreshTokenHash: "r-sgn_young", access: access, refresh: refresh,
                                                      address: "", client: "", at: now) else { Issue.record("not rotated"); return }
        (access, refresh) = next(2)
        guard case .reused(_, let ended, _) = try await store.rotate(refreshTokenHash: "r-sgn_young", access: access,
                                                                     refresh: refresh, address: "", client: "", at: now)
        else { Issue.record("reuse not noticed"); return }
        #expect(ended == "sgn_young")
        #expect(try await store.signedIn(accessTokenHash: "a1", now: now) == nil, "the family's new token ends too")

        try await signIn("sgn_old", createdAt: now.addingTimeInterval(-91 * 86400))
        (access, refresh) = next(3)
        guard case .expired = try await store.rotate(refreshTokenHash: "r-sgn_old", access: access, refresh: refresh,
                                                      address: "", client: "", at: now) else { Issue.record("an old sign-in refreshed"); return }
    }

    /// A data directory from before workspaces: each account gets a personal workspace holding
    /// what it owned (templates and sessions, deleted ones too), with the account as its owner;
    /// names stay unique; rows written afterwards land in their owner's personal workspace.
    @Test func accountsFromBeforeWorkspacesGetAPersonalOneHoldingWhatTheyOwned() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("flare.sqlite")
        let now = Date()
        do {
            let old = try DatabaseQueue(path: path)
            try Migrations.migrator.migrate(old, upTo: "0007_device_authorizations")
            try await old.write { db in
                for (id, email) in [("usr_1", "Dev.Ops@example.com"), ("usr_2", "dev.ops@other.org")] {
                    try db.execute(sql: "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, 'x', ?)",
                                   arguments: [id, email, now])
                    try db.execute(sql: "INSERT INTO templates (id, owner_id, name, created_at) VALUES (?, ?, 'base', ?)",
                                   arguments: ["tpl_\(id)", id, now])
                    try db.execute(sql: """
                        INSERT INTO template_versions (id, template_id, version, manifest_json, created_at)
                        VALUES (?, ?, '1', '{}', ?)
                        """, arguments: ["tv_\(id)", "tpl_\(id)", now])
                    for (session, state) in [("live", "running"), ("gone", "deleted")] {
                        try db.execute(sql: """
                            INSERT INTO sessions (id, owner_id, name, template_id, template_version_id, state, state_reason,
                                                  host_private_key, host_public_key, created_at, updated_at)
                            VALUES (?, ?, 'dev', ?, ?, ?, '', 'k', 'p', ?, ?)
                            """, arguments: ["ses_\(id)_\(session)", id, "tpl_\(id)", "tv_\(id)", state, now, now])
                    }
                }
            }
        }
        let store = try Store(path: path)
        var personal: [String: String] = [:]
        for (id, name) in [("usr_1", "dev-ops"), ("usr_2", "dev-ops-2")] {
            let workspaces = try await store.workspaces(userId: id)
            #expect(workspaces.map(\.workspace.name) == [name] && workspaces.map(\.role) == [.owner], "\(workspaces)")
            let workspace = try #require(workspaces.first?.workspace)
            #expect(workspace.personalOf == id)
            personal[id] = workspace.id
            let held = try await store.read { db in
                try String.fetchAll(db, sql: """
                    SELECT id FROM templates WHERE workspace_id = ? UNION ALL SELECT id FROM sessions WHERE workspace_id = ?
                    ORDER BY 1
                    """, arguments: [workspace.id, workspace.id])
            }
            #expect(held == ["ses_\(id)_gone", "ses_\(id)_live", "tpl_\(id)"])
            // Nobody is a member of another's personal workspace.
            #expect(try await store.workspace(workspace.name, userId: id == "usr_1" ? "usr_2" : "usr_1") == nil)
        }
        try await store.insertTemplate(TemplateRecord(id: "tpl_new", ownerId: "usr_2", name: "next", description: "",
                                                      activeVersionId: nil, createdAt: now))
        let placed = try await store.read { db in try String.fetchOne(db, sql: "SELECT workspace_id FROM templates WHERE id = 'tpl_new'") }
        #expect(placed == personal["usr_2"])
    }

    /// A list of any length is read with the index for its filter, never by scanning sessions.
    @Test func sessionListsUseTheirIndex() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store(path: directory.path("flare.sqlite"))
        let plan = try await store.read { db in
            try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + Store.sessionPageSQL
                + " WHERE owner_id = ? AND state != 'deleted' ORDER BY created_at, id LIMIT 10",
                arguments: ["usr_x"]).map { $0["detail"] as String? ?? "" }
        }
        #expect(plan.contains { $0.contains("sessions USING INDEX sessions_owner_created") }, "\(plan)")
        #expect(!plan.contains { $0.contains("TEMP B-TREE") }, "no sort outside the index: \(plan)")
    }

    /// A session named or numbered in a route is found through an index, never by reading the
    /// owner's sessions one by one.
    @Test func aSessionByIdOrNameIsFoundThroughItsIndexes() async throws {
        let (store, _directory) = try makeStore()
        _ = _directory
        for select in ["SELECT * FROM sessions", Store.sessionListingSQL] {
            let plan = try await store.read { db in
                try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + select + " WHERE " + Store.sessionReferenceSQL,
                                 arguments: Store.sessionReferenceArguments(ownerId: "usr_x", reference: "dev"))
                    .map { $0["detail"] as String? ?? "" }
            }
            #expect(plan.contains { $0.contains("SEARCH sessions USING INDEX sqlite_autoindex_sessions_1 (id=?)") }, "\(plan)")
            #expect(plan.contains { $0.contains("SEARCH sessions USING INDEX sessions_owner_name_live (owner_id=? AND name=?)") },
                    "\(plan)")
            #expect(!plan.contains { $0.contains("SCAN") }, "\(plan)")
        }
    }

    @Test func emailsAreUniqueWhateverTheCase() async throws {
        let (store, _directory) = try makeStore()
        _ = _directory
        try await store.insertUser(user("Dev@Example.com"))
        await #expect(throws: StoreError.duplicate) { try await store.insertUser(user("dev@example.com")) }
        #expect(try await store.user(email: "DEV@example.COM") != nil)
    }

    @Test func transitionsAreCheckedAndRecordedAsEvents() async throws {
        let (store, _directory) = try makeStore()
        _ = _directory
        let owner = user("a@b.co")
        try await store.insertUser(owner)
        let template = TemplateRecord(id: "tpl_1", ownerId: owner.id, name: "base", description: "",
                                      activeVersionId: nil, createdAt: Date())
        try await store.insertTemplate(template)
        try await store.insertTemplateVersion(TemplateVersionRecord(
            id: "tv_1", templateId: "tpl_1", version: "1", manifestJson: "{\"image\":\"x\"}", createdAt: Date(),
            promotedAt: nil))
        let session = SessionRecord(
            id: "ses_1", ownerId: owner.id, name: "dev", templateId: "tpl_1", templateVersionId: "tv_1",
            state: .created, stateReason: "created", hostPrivateKey: "k", hostPublicKey: "p", agentTokenHash: nil,
            agentPid: nil, agentEndpoint: nil, lastHeartbeatAt: nil, activityJson: nil, createdAt: Date(),
            updatedAt: Date(), latestSnapshotId: nil)
        try await store.insertSession(session, reason: "created")
        // A command the machine refuses, or that changes nothing, writes nothing.
        guard case .refused = try await store.transition(sessionId: "ses_1", .agentReady, reason: "x") else {
            Issue.record("agentReady on a created session was not refused")
            return
        }
        guard case .unchanged = try await store.transition(sessionId: "ses_1", .stop, reason: "x") else {
            Issue.record("stopping a created session changed it")
            return
        }
        #expect(try await store.transition(sessionId: "ses_nope", .start, reason: "x") == nil)
        let moved = try await store.transition(sessionId: "ses_1", .start, reason: "go")
        #expect(moved?.session.state == .starting)
        let events = try await store.events(sessionId: "ses_1", limit: 100, after: nil).items
        #expect(events.map(\.toState) == [.created, .starting])
        #expect(events.last?.reason == "go")
        // Nothing else changes a state.
        await #expect(throws: StoreError.stateChangeOutsideMachine) {
            try await store.updateSession(id: "ses_1") { $0.state = .running }
        }
        #expect(try await store.session(id: "ses_1")?.state == .starting)
        // Names are unique among live sessions only.
        var twin = session
        twin.id = "ses_2"
        await #expect(throws: StoreError.duplicate) { try await store.insertSession(twin, reason: "created") }
        _ = try await store.transition(sessionId: "ses_1", .delete, reason: "bye")
        try await store.insertSession(twin, reason: "created")
        #expect(try await store.session(ownerId: owner.id, reference: "dev")?.id == "ses_2")
    }

    /// Sign-ins are answered from memory between writes; any commit to tokens or accounts, by
    /// whatever statement, ends that at once: a revoked, expired-by-update or deleted token is
    /// refused on the very next lookup.
    @Test func aCachedSignInNeverOutlivesAWriteToTokensOrAccounts() async throws {
        let (store, directory) = try makeStore()
        _ = directory
        let owner = user("cache@example.com")
        try await store.insertUser(owner)
        let now = Date()
        for secret in ["a", "b", "c"] {
            try await store.insertAccessToken(AccessTokenRecord(
                tokenHash: secret, userId: owner.id, createdAt: now, expiresAt: now.addingTimeInterval(600), revokedAt: nil))
        }
        for secret in ["a", "b", "c"] {
            #expect(try await store.signedIn(accessTokenHash: secret, now: now)?.user.id == owner.id)
            #expect(store.signIns.signedIn(tokenHash: secret, now: now)?.user.id == owner.id, "answered from memory next time")
        }
        // Revoked through the store's own call.
        try await store.revokeAccessToken(hash: "a", at: now)
        #expect(try await store.signedIn(accessTokenHash: "a", now: now) == nil)
        // Changed by a statement that knows nothing of the cache.
        try await store.write { db in
            try db.execute(sql: "UPDATE access_tokens SET expires_at = ? WHERE token_hash = 'b'", arguments: [now])
        }
        #expect(try await store.signedIn(accessTokenHash: "b", now: now) == nil)
        // A token past its expiry is not answered from memory either.
        #expect(try await store.signedIn(accessTokenHash: "c", now: now)?.user.id == owner.id)
        #expect(try await store.signedIn(accessTokenHash: "c", now: now.addingTimeInterval(601)) == nil)
        // A write that fails and rolls back leaves a cached answer in place.
        #expect(try await store.signedIn(accessTokenHash: "c", now: now)?.user.id == owner.id)
        await #expect(throws: (any Error).self) { try await store.insertUser(self.user("CACHE@example.com")) }
        #expect(store.signIns.signedIn(tokenHash: "c", now: now)?.user.id == owner.id)
        // Deleting the account ends its tokens' sign-ins.
        try await store.write { db in
            try db.execute(sql: "DELETE FROM access_tokens WHERE user_id = ?", arguments: [owner.id])
            try db.execute(sql: "DELETE FROM users WHERE id = ?", arguments: [owner.id])
        }
        #expect(try await store.signedIn(accessTokenHash: "c", now: now) == nil)
    }
}
