import FlareContracts
import Foundation
import GRDB

extension Store {
    /// Inserts a session with its first event.
    func insertSession(_ session: SessionRecord, reason: String) async throws {
        try await write { db in
            try session.insert(db)
            try SessionEventRecord(id: nil, sessionId: session.id, fromState: nil, toState: session.state,
                                   reason: reason, createdAt: session.createdAt).insert(db)
        }
    }

    /// The owner's live session named `reference`, or with that id.
    func session(ownerId: String, reference: String) async throws -> SessionRecord? {
        try await read { db in
            try SessionRecord.fetchOne(db.cachedStatement(sql: "SELECT * FROM sessions WHERE " + Self.sessionReferenceSQL),
                                       arguments: Self.sessionReferenceArguments(ownerId: ownerId, reference: reference))
        }
    }

    /// The condition for an owner's live session by id or name, each through its own index (the
    /// primary key, and the live-name index, whose `state != 'deleted'` must be spelled out for
    /// SQLite to use it). `id = ? OR name = ?` read all the owner's sessions: 0.5 ms of a single
    /// session's read at 1,000 of them.
    static let sessionReferenceSQL = """
        (sessions.id = ? OR (sessions.owner_id = ? AND sessions.name = ? AND sessions.state != 'deleted'))
        AND sessions.owner_id = ? AND sessions.state != 'deleted'
        """

    static func sessionReferenceArguments(ownerId: String, reference: String) -> StatementArguments {
        [reference, ownerId, reference, ownerId]
    }

    func session(id: String) async throws -> SessionRecord? {
        try await read { try SessionRecord.fetchOne($0, key: id) }
    }

    func session(agentTokenHash hash: String) async throws -> SessionRecord? {
        try await read { try SessionRecord.filter(Column("agent_token_hash") == hash).fetchOne($0) }
    }

    func sessions(inStates states: [SessionState]) async throws -> [SessionRecord] {
        try await read { db in
            try SessionRecord.filter(states.map(\.rawValue).contains(Column("state"))).fetchAll(db)
        }
    }

    /// Applies `command` to the session's current state through ``SessionStateMachine``, in one
    /// transaction: when the machine moves it, the new state, its reason and its event are written
    /// together, and `update` may change other columns of the row. The only way a session's state
    /// changes. Nil when there is no such session.
    func transition(
        sessionId: String, _ command: SessionStateMachine.Command, reason: String, at date: Date = Date(),
        update: @Sendable @escaping (inout SessionRecord) -> Void = { _ in }
    ) async throws -> SessionTransition? {
        try await write { db in
            guard var session = try SessionRecord.fetchOne(db, key: sessionId) else { return nil }
            let from = session.state
            switch SessionStateMachine.apply(command, to: from) {
            case .unchanged:
                return .unchanged(session)
            case .refused(let why):
                return .refused(why, session)
            case .moveTo(let state):
                session.state = state
                session.stateReason = reason
                session.updatedAt = date
                update(&session)
                guard session.state == state else { throw StoreError.stateChangeOutsideMachine }
                try session.update(db)
                try SessionEventRecord(id: nil, sessionId: sessionId, fromState: from, toState: state, reason: reason,
                                       createdAt: date).insert(db)
                return .moved(session, from: from)
            }
        }
    }

    /// Changes columns of a session other than its state (which only
    /// ``transition(sessionId:_:reason:at:update:)`` changes).
    func updateSession(id: String, _ update: @Sendable @escaping (inout SessionRecord) -> Void) async throws {
        try await write { db in
            guard var session = try SessionRecord.fetchOne(db, key: id) else { return }
            let (state, reason) = (session.state, session.stateReason)
            update(&session)
            guard session.state == state, session.stateReason == reason else { throw StoreError.stateChangeOutsideMachine }
            try session.update(db)
        }
    }

    /// A session's events in order, `limit` at most after the event numbered `cursor`: one
    /// statement on the session's index. Throws ``StoreError/unknownCursor`` for a cursor that is not
    /// one of the session's events.
    func events(sessionId: String, limit: Int, after cursor: String?) async throws -> Page<SessionEventRecord> {
        try await read { db in
            var request = SessionEventRecord.filter(Column("session_id") == sessionId)
            if let cursor {
                guard let id = Int64(cursor), try request.filter(Column("id") == id).fetchCount(db) == 1 else {
                    throw StoreError.unknownCursor
                }
                request = request.filter(Column("id") > id)
            }
            let events = try request.order(Column("id")).limit(limit + 1).fetchAll(db)
            let page = Array(events.prefix(limit))
            return Page(items: page, next: events.count > limit ? page.last?.id.map(String.init) : nil)
        }
    }

    func insertRuntimeToken(_ token: RuntimeTokenRecord) async throws {
        try await write { try token.insert($0) }
    }

    func runtimeToken(id: String) async throws -> RuntimeTokenRecord? {
        try await read { try RuntimeTokenRecord.fetchOne($0, key: id) }
    }
}

extension Store {
    /// Records a stored, verified snapshot and makes it the session's latest good one, keeping at
    /// most `keep` snapshots for the session (the oldest go; their blobs at the next collection).
    func insertSnapshot(_ snapshot: SnapshotRecord, keep: Int) async throws {
        try await write { db in
            try snapshot.insert(db)
            try db.execute(sql: "UPDATE sessions SET latest_snapshot_id = ? WHERE id = ?",
                           arguments: [snapshot.id, snapshot.sessionId])
            try db.execute(sql: """
                DELETE FROM snapshots WHERE session_id = ? AND id NOT IN
                  (SELECT id FROM snapshots WHERE session_id = ? ORDER BY created_at DESC LIMIT ?)
                """, arguments: [snapshot.sessionId, snapshot.sessionId, max(1, keep)])
        }
    }

    /// Makes `snapshotId` the one the session's next wake restores.
    func setLatestSnapshot(sessionId: String, snapshotId: String) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE sessions SET latest_snapshot_id = ? WHERE id = ?",
                           arguments: [snapshotId, sessionId])
        }
    }

    func snapshot(id: String) async throws -> SnapshotRecord? {
        try await read { try SnapshotRecord.fetchOne($0, key: id) }
    }

    func snapshots(sessionId: String) async throws -> [SnapshotRecord] {
        try await read { try SnapshotRecord.filter(Column("session_id") == sessionId).order(Column("created_at")).fetchAll($0) }
    }
}

extension Store {
    /// Forgets a session's snapshots (their blobs go at the next garbage collection).
    func deleteSnapshots(sessionId: String) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE sessions SET latest_snapshot_id = NULL WHERE id = ?", arguments: [sessionId])
            try SnapshotRecord.filter(Column("session_id") == sessionId).deleteAll(db)
        }
    }

    /// Every blob digest a snapshot still refers to.
    func referencedBlobDigests() async throws -> Set<String> {
        try await read { db in Set(try String.fetchAll(db, sql: "SELECT DISTINCT blob_digest FROM snapshots")) }
    }
}

extension Store {
    func deleteSnapshot(id: String) async throws {
        _ = try await write { try SnapshotRecord.deleteOne($0, key: id) }
    }
}

extension Store {
    /// Bytes of snapshot archives the user's sessions hold, not counting `excluding`.
    func snapshotStorage(ownerId: String, excluding: Set<String> = []) async throws -> Int64 {
        try await read { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT s.id, s.archive_bytes FROM snapshots s JOIN sessions se ON s.session_id = se.id
                WHERE se.owner_id = ?
                """, arguments: [ownerId])
            return rows.filter { !excluding.contains($0["id"]) }.reduce(0) { $0 + ($1["archive_bytes"] as Int64) }
        }
    }
}

extension Store {
    /// Revokes every unrevoked runtime token of the session; returns how many.
    func revokeRuntimeTokens(sessionId: String, at date: Date) async throws -> Int {
        try await revokeRuntimeTokens(where: "session_id", is: sessionId, at: date)
    }

    /// Revokes every unrevoked runtime token of the user; returns how many.
    func revokeRuntimeTokens(userId: String, at date: Date) async throws -> Int {
        try await revokeRuntimeTokens(where: "user_id", is: userId, at: date)
    }

    private func revokeRuntimeTokens(where column: String, is value: String, at date: Date) async throws -> Int {
        try await write { db in
            try db.execute(sql: "UPDATE runtime_tokens SET revoked_at = ? WHERE \(column) = ? AND revoked_at IS NULL",
                           arguments: [date, value])
            return db.changesCount
        }
    }
}

extension Store {

    /// Of `ids`, the runtime tokens that no longer give access: revoked, unknown, or their session gone.
    func lostRuntimeTokens(ids: [String]) async throws -> [String] {
        try await read { db in
            try ids.filter { id in
                guard let token = try RuntimeTokenRecord.fetchOne(db, key: id), token.revokedAt == nil,
                      let session = try SessionRecord.fetchOne(db, key: token.sessionId),
                      session.state != .deleted, session.ownerId == token.userId
                else { return true }
                return false
            }
        }
    }

    /// Records a gateway's service key (idempotent).
    func registerGateway(_ gateway: GatewayRecord) async throws {
        try await write { try gateway.save($0) }
    }

    func gateways() async throws -> [GatewayRecord] {
        try await read { try GatewayRecord.order(Column("registered_at")).fetchAll($0) }
    }

    func removeGateway(serviceKey: String) async throws {
        _ = try await write { try GatewayRecord.deleteOne($0, key: serviceKey) }
    }

    /// Every gateway's service key; agents trust them for the terminal bridge.
    func gatewayServiceKeys() async throws -> [String] {
        try await read { try GatewayRecord.order(Column("registered_at")).fetchAll($0).map(\.serviceKey) }
    }
}
