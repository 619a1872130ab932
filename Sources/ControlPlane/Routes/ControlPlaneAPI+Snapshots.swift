import Crypto
import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird

extension ControlPlaneAPI {
    /// Snapshot upload and download for agents (`/agent/v1/snapshots`).
    func addAgentSnapshotRoutes(to group: RouterGroup<FlareRequestContext>) {
        group.put("/snapshots") { request, context -> EditedResponse<SnapshotInfo> in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            let declared = request.headers[.init("x-flare-sha256")!] ?? ""
            // Snapshots this one will prune do not count against the user's storage.
            let pruned = try await store.snapshots(sessionId: session.id).reversed()
                .dropFirst(max(0, maxSnapshotsPerSession - 1)).map(\.id)
            let used = try await store.snapshotStorage(ownerId: session.ownerId, excluding: Set(pruned))
            // The declared length is promised before a byte is read (the whole room left when no
            // length is declared): parallel uploads cannot together pass the quota.
            let declaredLength = request.headers[.contentLength].flatMap { Int64($0) }
            let wanted = declaredLength
                ?? storageReservations.available(owner: session.ownerId, used: used, limit: maxStoragePerUser)
            guard let reservation = storageReservations.reserve(owner: session.ownerId, bytes: wanted, used: used,
                                                                limit: maxStoragePerUser)
            else { throw storageQuotaExceeded() }
            defer { storageReservations.release(reservation) }
            let temporary = blobs.temporaryFile()
            defer { try? FileManager.default.removeItem(at: temporary) }
            let (digest, size) = try await receive(request.body, into: temporary, limit: wanted)
            guard digest == declared else {
                throw APIError.badRequest("the snapshot's content does not match its declared sha256",
                                          code: "digest_mismatch")
            }
            try blobs.ingest(temporary, digest: digest)
            // Pinned against collection until the snapshot row refers to it.
            defer { blobs.release(digest) }
            func header(_ name: String) -> Int64 { Int64(request.headers[.init(name)!] ?? "") ?? 0 }
            let snapshot = SnapshotRecord(
                id: FlareID.make("snp"), sessionId: session.id, blobDigest: digest,
                entryCount: Int(header("x-flare-entry-count")), totalBytes: header("x-flare-total-bytes"),
                archiveBytes: size, reason: String((request.headers[.init("x-flare-reason")!] ?? "agent").prefix(200)),
                createdAt: Date())
            try await store.insertSnapshot(snapshot, keep: maxSnapshotsPerSession)
            try await store.audit(userId: session.ownerId, action: "snapshot.store", target: snapshot.id,
                                  detail: "\(session.id) \(size) bytes")
            return EditedResponse(status: .created, response: snapshot.info)
        }

        group.get("/commands") { _, context -> Response in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            guard let command = await commands.next(sessionId: session.id, timeout: .seconds(25)) else {
                return Response(status: .noContent)
            }
            let data = try FlareJSON.encoder().encode(command)
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: data)))
        }

        group.post("/commands/{id}/result") { request, context -> HTTPResponse.Status in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            let result = try await request.decodeJSON(AgentCommandResult.self, context: context)
            let id = try context.parameters.require("id")
            guard await commands.finish(id, sessionId: session.id, result) else {
                throw APIError.notFound("command \(id)")
            }
            return .noContent
        }

        group.get("/snapshots/{id}/content") { _, context -> Response in
            guard let session = context.agentSession else { throw APIError.unauthorized() }
            let id = try context.parameters.require("id")
            guard let snapshot = try await store.snapshot(id: id), snapshot.sessionId == session.id else {
                throw APIError.notFound("snapshot \(id)")
            }
            return try await archiveResponse(snapshot, context: context)
        }
    }

    /// Snapshots as users see them (`/api/sessions/{session}/snapshots`).
    func addUserSnapshotRoutes(to group: RouterGroup<FlareRequestContext>) {
        group.get("/sessions/{session}/snapshots") { _, context -> [SnapshotInfo] in
            let session = try await session(context, for: .snapshotList)
            return try await store.snapshots(sessionId: session.id).reversed().map {
                var info = $0.info
                info.latest = $0.id == session.latestSnapshotId
                return info
            }
        }

        group.get("/sessions/{session}/snapshots/{id}/content") { _, context -> Response in
            try await archiveResponse(try await userSnapshot(context, for: .snapshotDownload), context: context)
        }

        group.post("/sessions/{session}/snapshots") { _, context -> EditedResponse<SnapshotInfo> in
            let user = try context.requireUser()
            let session = try await session(context, for: .snapshotSave)
            guard session.state == .running else {
                throw APIError.conflict("session \(session.name) is \(session.state.rawValue); a snapshot is taken "
                    + "automatically when it stops, or start it to save one now", code: "session_not_running")
            }
            guard try await store.snapshotStorage(ownerId: user.id) < maxStoragePerUser else {
                throw APIError(.contentTooLarge, code: "storage_quota",
                               "the snapshot storage quota (\(maxStoragePerUser) bytes) is used up; delete snapshots first")
            }
            guard try await store.snapshots(sessionId: session.id).count < maxSnapshotsPerSession else {
                throw APIError.forbidden("session \(session.name) already has \(maxSnapshotsPerSession) snapshots; "
                    + "delete older ones with `flare snapshot delete`", code: "snapshot_limit")
            }
            let result = await commands.run(AgentCommand(id: FlareID.make("cmd"), kind: .snapshot),
                                            sessionId: session.id, timeout: .seconds(600))
            guard result.succeeded, let id = result.snapshotId, let stored = try await store.snapshot(id: id) else {
                if result.status == 413 {
                    throw APIError(.contentTooLarge, code: "storage_quota", "the snapshot was refused: \(result.message)")
                }
                throw APIError(.badGateway, code: "snapshot_failed", "the snapshot failed: \(result.message)")
            }
            try await store.audit(userId: user.id, action: "snapshot.save", target: id)
            var info = stored.info
            info.latest = true
            return EditedResponse(status: .created, response: info)
        }

        group.post("/sessions/{session}/snapshots/{id}/restore") { _, context -> EditedResponse<SnapshotInfo> in
            let user = try context.requireUser()
            let session = try await session(context, for: .snapshotRestore)
            let snapshot = try await userSnapshot(context, for: .snapshotRestore)
            try await store.audit(userId: user.id, action: "snapshot.restore", target: snapshot.id)
            guard session.state == .running else {
                // Applied by the next wake, which restores the session's latest snapshot.
                try await store.setLatestSnapshot(sessionId: session.id, snapshotId: snapshot.id)
                return EditedResponse(status: .accepted, response: snapshot.info)
            }
            let result = await commands.run(
                AgentCommand(id: FlareID.make("cmd"), kind: .restore, snapshot: snapshot.reference),
                sessionId: session.id, timeout: .seconds(600))
            guard result.succeeded else {
                throw APIError(.badGateway, code: "restore_failed", "the restore failed: \(result.message)")
            }
            try await store.setLatestSnapshot(sessionId: session.id, snapshotId: snapshot.id)
            return EditedResponse(status: .ok, response: snapshot.info)
        }

        group.delete("/sessions/{session}/snapshots/{id}") { _, context -> HTTPResponse.Status in
            let user = try context.requireUser()
            let session = try await session(context, for: .snapshotDelete)
            let snapshot = try await userSnapshot(context, for: .snapshotDelete)
            guard snapshot.id != session.latestSnapshotId else {
                throw APIError.conflict("\(snapshot.id) is the session's latest snapshot; its next wake restores it",
                                        code: "snapshot_in_use")
            }
            try await store.deleteSnapshot(id: snapshot.id)
            try await store.audit(userId: user.id, action: "snapshot.delete", target: snapshot.id)
            return .noContent
        }
    }

    /// Streams a snapshot's archive once its blob has been checked against its digest; a blob that
    /// no longer matches is a 422, never a silently damaged download.
    private func archiveResponse(_ snapshot: SnapshotRecord, context: FlareRequestContext) async throws -> Response {
        let path: URL
        do {
            path = try blobs.verifiedPath(of: snapshot.blobDigest)
        } catch {
            throw APIError(.unprocessableContent, code: "snapshot_corrupt", "\(error)")
        }
        let body = try await FileIO(threadPool: .singleton).loadFile(path: path.path, context: context)
        return Response(status: .ok, headers: [.contentType: "application/zstd",
                                               .contentLength: String(snapshot.archiveBytes)], body: body)
    }

    private func userSnapshot(_ context: FlareRequestContext, for action: Action) async throws -> SnapshotRecord {
        let session = try await session(context, for: action)
        let id = try context.parameters.require("id")
        let all = try await store.snapshots(sessionId: session.id)
        let wanted = id == "latest" ? session.latestSnapshotId : id
        guard let snapshot = all.first(where: { $0.id == wanted }) else { throw APIError.notFound("snapshot \(id)") }
        return snapshot
    }

    /// Streams a request body to `file`, hashing it; refuses bodies over the snapshot size limit.
    private func storageQuotaExceeded() -> APIError {
        APIError(.contentTooLarge, code: "storage_quota",
                 "the snapshot storage quota (\(maxStoragePerUser) bytes) is used up; "
                     + "delete snapshots or sessions with `flare snapshot delete` or `flare session delete`")
    }

    private func receive(_ body: RequestBody, into file: URL, limit storageLeft: Int64) async throws -> (String, Int64) {
        guard FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = try? FileHandle(forWritingTo: file)
        else { throw APIError(.internalServerError, code: "internal", "cannot store the snapshot") }
        defer { try? handle.close() }
        var hasher = SHA256()
        var size: Int64 = 0
        for try await buffer in body {
            size += Int64(buffer.readableBytes)
            guard size <= maxSnapshotBytes else {
                throw APIError(.contentTooLarge, code: "snapshot_too_large",
                               "the snapshot is larger than the \(maxSnapshotBytes)-byte limit")
            }
            guard size <= storageLeft else { throw storageQuotaExceeded() }
            let data = Data(buffer: buffer)
            hasher.update(data: data)
            try handle.write(contentsOf: data)
        }
        try handle.synchronize()
        return (FileBlobStore.hex(hasher.finalize()), size)
    }
}

extension SnapshotRecord {
    var info: SnapshotInfo {
        SnapshotInfo(id: id, sessionId: sessionId, sha256: blobDigest, entryCount: entryCount,
                     totalBytes: totalBytes, archiveBytes: archiveBytes, reason: reason, createdAt: createdAt)
    }

    var reference: SnapshotReference { SnapshotReference(id: id, sha256: blobDigest, archiveBytes: archiveBytes) }
}

extension SnapshotInfo: ResponseEncodable {}
