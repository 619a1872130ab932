import FlareContracts
import Foundation
import NIOCore

/// The limits snapshots live within.
struct SnapshotLimits: Sendable {
    /// The largest snapshot accepted.
    var maxSnapshotBytes: Int64
    /// Snapshots kept per session: stops prune the oldest; a manual save past it is refused.
    var maxSnapshotsPerSession: Int
    /// Snapshot storage each user may hold, over all their sessions.
    var maxStoragePerUser: Int64
}

/// A snapshot's archive, checked against its digest, ready to stream.
struct SnapshotArchive: Sendable {
    let path: URL
    let bytes: Int64
}

/// An agent calling home. It acts for its one session only: the channel it dials and its token
/// bind it there (``AgentAuthMiddleware``), so it needs no rule in ``Policy``.
struct AgentCaller: Sendable {
    let session: SessionRecord
}

/// Snapshots: users list, download, save, restore and delete them through a session; agents
/// upload the ones their session takes and download the one it restores.
struct SnapshotService: Sendable {
    let store: Store
    let sessions: SessionService
    let blobs: FileBlobStore
    let commands: AgentCommandBroker
    let limits: SnapshotLimits
    /// Snapshot bytes promised to uploads in flight.
    let reservations: StorageReservations

    /// What an agent declares with an upload (its headers).
    struct Upload: Sendable {
        var sha256: String
        /// The body's length, when declared; promised against the quota before a byte is read.
        var length: Int64?
        var entryCount: Int
        var totalBytes: Int64
        var reason: String
    }

    /// The session's snapshots, newest first, the one its next wake restores marked `latest`.
    func list(_ actor: Caller, session reference: String) async throws -> [SnapshotInfo] {
        let session = try await sessions.authorized(actor, .snapshotList, reference)
        return try await store.snapshots(sessionId: session.id).reversed().map {
            var info = $0.info
            info.latest = $0.id == session.latestSnapshotId
            return info
        }
    }

    func archive(_ actor: Caller, session reference: String, snapshot id: String) async throws -> SnapshotArchive {
        let (_, snapshot) = try await authorized(actor, .snapshotDownload, reference, id)
        return try await archive(snapshot)
    }

    /// Has the running session's agent take a snapshot now.
    func save(_ actor: Caller, session reference: String) async throws -> SnapshotInfo {
        let session = try await sessions.authorized(actor, .snapshotSave, reference)
        guard session.state == .running else {
            throw ServiceError.conflict("session \(session.name) is \(session.state.rawValue); a snapshot is taken "
                + "automatically when it stops, or start it to save one now", code: "session_not_running")
        }
        guard try await store.snapshotStorage(ownerId: session.ownerId) < limits.maxStoragePerUser else {
            throw ServiceError(.tooLarge, code: "storage_quota",
                               "the snapshot storage quota (\(limits.maxStoragePerUser) bytes) is used up; delete snapshots first")
        }
        guard try await store.snapshots(sessionId: session.id).count < limits.maxSnapshotsPerSession else {
            throw ServiceError(.forbidden, code: "snapshot_limit",
                               "session \(session.name) already has \(limits.maxSnapshotsPerSession) snapshots; "
                                   + "delete older ones with `flare snapshot delete`")
        }
        let result = await commands.run(AgentCommand(id: FlareID.make("cmd"), kind: .snapshot),
                                        sessionId: session.id, timeout: .seconds(600))
        guard result.succeeded, let id = result.snapshotId, let stored = try await store.snapshot(id: id) else {
            if result.status == 413 {
                throw ServiceError(.tooLarge, code: "storage_quota", "the snapshot was refused: \(result.message)")
            }
            throw ServiceError(.upstreamFailed, code: "snapshot_failed", "the snapshot failed: \(result.message)")
        }
        try await store.audit(actor, action: "snapshot.save", target: id)
        var info = stored.info
        info.latest = true
        return info
    }

    enum Restored: Sendable {
        /// The running session's agent restored it.
        case now(SnapshotInfo)
        /// The session is not running: its next wake restores it.
        case atNextWake(SnapshotInfo)
    }

    func restore(_ actor: Caller, session reference: String, snapshot id: String) async throws -> Restored {
        let (session, snapshot) = try await authorized(actor, .snapshotRestore, reference, id)
        try await store.audit(actor, action: "snapshot.restore", target: snapshot.id)
        guard session.state == .running else {
            try await store.setLatestSnapshot(sessionId: session.id, snapshotId: snapshot.id)
            return .atNextWake(snapshot.info)
        }
        let result = await commands.run(
            AgentCommand(id: FlareID.make("cmd"), kind: .restore, snapshot: snapshot.reference),
            sessionId: session.id, timeout: .seconds(600))
        guard result.succeeded else {
            throw ServiceError(.upstreamFailed, code: "restore_failed", "the restore failed: \(result.message)")
        }
        try await store.setLatestSnapshot(sessionId: session.id, snapshotId: snapshot.id)
        return .now(snapshot.info)
    }

    func delete(_ actor: Caller, session reference: String, snapshot id: String) async throws {
        let (session, snapshot) = try await authorized(actor, .snapshotDelete, reference, id)
        guard snapshot.id != session.latestSnapshotId else {
            throw ServiceError.conflict("\(snapshot.id) is the session's latest snapshot; its next wake restores it",
                                        code: "snapshot_in_use")
        }
        try await store.deleteSnapshot(id: snapshot.id)
        try await store.audit(actor, action: "snapshot.delete", target: snapshot.id)
    }

    /// Keeps a snapshot the agent uploads: promised against the owner's storage before a byte is
    /// read (parallel uploads cannot together pass the quota), streamed to disk, hashed, checked
    /// against its declared digest, then stored by content; the oldest past the per-session limit
    /// are pruned.
    func store<Body: AsyncSequence>(_ agent: AgentCaller, _ upload: Upload, _ body: Body) async throws -> SnapshotInfo
        where Body.Element == ByteBuffer
    {
        let session = agent.session
        // Snapshots this one will prune do not count against the user's storage.
        let pruned = try await store.snapshots(sessionId: session.id).reversed()
            .dropFirst(max(0, limits.maxSnapshotsPerSession - 1)).map(\.id)
        let used = try await store.snapshotStorage(ownerId: session.ownerId, excluding: Set(pruned))
        let wanted = upload.length
            ?? reservations.available(owner: session.ownerId, used: used, limit: limits.maxStoragePerUser)
        guard let reservation = reservations.reserve(owner: session.ownerId, bytes: wanted, used: used,
                                                     limit: limits.maxStoragePerUser)
        else { throw storageQuotaExceeded() }
        defer { reservations.release(reservation) }
        let temporary = blobs.temporaryFile()
        defer { try? FileManager.default.removeItem(at: temporary) }
        let file = try UploadFile(temporary, hashing: true)
        let maxBytes = limits.maxSnapshotBytes
        try await file.receive(body) { size in
            guard size <= maxBytes else {
                throw ServiceError(.tooLarge, code: "snapshot_too_large",
                                   "the snapshot is larger than the \(maxBytes)-byte limit")
            }
            guard size <= wanted else { throw storageQuotaExceeded() }
        }
        guard let digest = file.digest, digest == upload.sha256 else {
            throw ServiceError.invalid("the snapshot's content does not match its declared sha256", code: "digest_mismatch")
        }
        try await blocking { [blobs] in try blobs.ingest(temporary, digest: digest) }
        // Pinned against collection until the snapshot row refers to it.
        defer { blobs.release(digest) }
        let snapshot = SnapshotRecord(
            id: FlareID.make("snp"), sessionId: session.id, blobDigest: digest, entryCount: upload.entryCount,
            totalBytes: upload.totalBytes, archiveBytes: file.size, reason: String(upload.reason.prefix(200)),
            createdAt: Date())
        try await store.insertSnapshot(snapshot, keep: limits.maxSnapshotsPerSession)
        try await store.audit(userId: session.ownerId, action: "snapshot.store", target: snapshot.id,
                              detail: "\(session.id) \(file.size) bytes")
        return snapshot.info
    }

    /// A snapshot of the agent's own session, for its restore.
    func archive(_ agent: AgentCaller, snapshot id: String) async throws -> SnapshotArchive {
        guard let snapshot = try await store.snapshot(id: id), snapshot.sessionId == agent.session.id else {
            throw ServiceError.notFound("snapshot \(id)")
        }
        return try await archive(snapshot)
    }

    /// The archive once its blob has been hashed against its digest (on the blocking pool); one
    /// that no longer matches is refused, never handed out damaged.
    private func archive(_ snapshot: SnapshotRecord) async throws -> SnapshotArchive {
        do {
            let path = try await blocking { [blobs] in try blobs.verifiedPath(of: snapshot.blobDigest) }
            return SnapshotArchive(path: path, bytes: snapshot.archiveBytes)
        } catch let error as FileBlobStore.BlobError {
            throw ServiceError(.corrupt, code: "snapshot_corrupt", error.description)
        }
    }

    /// The session and its snapshot `id` (`latest`: the one its next wake restores), once the
    /// policy allows `action` on the session.
    private func authorized(_ actor: Caller, _ action: Action, _ reference: String, _ id: String) async throws
        -> (SessionRecord, SnapshotRecord)
    {
        let session = try await sessions.authorized(actor, action, reference)
        let wanted = id == "latest" ? session.latestSnapshotId : id
        guard let snapshot = try await store.snapshots(sessionId: session.id).first(where: { $0.id == wanted }) else {
            throw ServiceError.notFound("snapshot \(id)")
        }
        return (session, snapshot)
    }

    private func storageQuotaExceeded() -> ServiceError {
        ServiceError(.tooLarge, code: "storage_quota",
                     "the snapshot storage quota (\(limits.maxStoragePerUser) bytes) is used up; "
                         + "delete snapshots or sessions with `flare snapshot delete` or `flare session delete`")
    }
}

extension SnapshotRecord {
    var info: SnapshotInfo {
        SnapshotInfo(id: id, sessionId: sessionId, sha256: blobDigest, entryCount: entryCount,
                     totalBytes: totalBytes, archiveBytes: archiveBytes, reason: reason, createdAt: createdAt)
    }

    var reference: SnapshotReference { SnapshotReference(id: id, sha256: blobDigest, archiveBytes: archiveBytes) }
}
