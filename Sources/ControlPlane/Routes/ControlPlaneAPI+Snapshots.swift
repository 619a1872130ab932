import FlareContracts
import Foundation
import Hummingbird

/// Snapshot routes, for agents and for users: adapters over ``SnapshotService``.
extension ControlPlaneAPI {
    /// Snapshot upload and download for agents (`/agent/v1/snapshots`).
    func addAgentSnapshotRoutes(to group: RouterGroup<AgentRequestContext>) {
        group.put("/snapshots") { request, context -> EditedResponse<SnapshotInfo> in
            func header(_ name: String) -> String? { request.headers[.init(name)!] }
            let upload = SnapshotService.Upload(
                sha256: header("x-flare-sha256") ?? "", length: request.headers[.contentLength].flatMap { Int64($0) },
                entryCount: Int(header("x-flare-entry-count") ?? "") ?? 0,
                totalBytes: Int64(header("x-flare-total-bytes") ?? "") ?? 0, reason: header("x-flare-reason") ?? "agent")
            return EditedResponse(status: .created, response: try await snapshots.store(context.agent, upload, request.body))
        }

        group.get("/snapshots/{id}/content") { _, context -> Response in
            try await archiveResponse(try await snapshots.archive(context.agent, snapshot: try context.parameters.require("id")),
                                      context: context)
        }
    }

    /// Snapshots as users see them (`/api/sessions/{session}/snapshots`).
    func addUserSnapshotRoutes(to group: RouterGroup<UserRequestContext>) {
        group.get("/sessions/{session}/snapshots") { _, context -> [SnapshotInfo] in
            try await snapshots.list(context.caller, session: try context.parameters.require("session"))
        }

        group.get("/sessions/{session}/snapshots/{id}/content") { _, context -> Response in
            let archive = try await snapshots.archive(context.caller, session: try context.parameters.require("session"),
                                                      snapshot: try context.parameters.require("id"))
            return try await archiveResponse(archive, context: context)
        }

        group.post("/sessions/{session}/snapshots") { _, context -> EditedResponse<SnapshotInfo> in
            let saved = try await snapshots.save(context.caller, session: try context.parameters.require("session"))
            return EditedResponse(status: .created, response: saved)
        }

        // 200 when the running session restored it now, 202 when its next wake will.
        group.post("/sessions/{session}/snapshots/{id}/restore") { _, context -> EditedResponse<SnapshotInfo> in
            switch try await snapshots.restore(context.caller, session: try context.parameters.require("session"),
                                               snapshot: try context.parameters.require("id")) {
            case .now(let info): EditedResponse(status: .ok, response: info)
            case .atNextWake(let info): EditedResponse(status: .accepted, response: info)
            }
        }

        group.delete("/sessions/{session}/snapshots/{id}") { _, context -> HTTPResponse.Status in
            try await snapshots.delete(context.caller, session: try context.parameters.require("session"),
                                       snapshot: try context.parameters.require("id"))
            return .noContent
        }
    }

    /// Streams a checked archive from NIO's file I/O pool.
    private func archiveResponse(_ archive: SnapshotArchive, context: some RequestContext) async throws -> Response {
        let body = try await FileIO(threadPool: .singleton).loadFile(path: archive.path.path, context: context)
        return Response(status: .ok, headers: [.contentType: "application/zstd",
                                               .contentLength: String(archive.bytes)], body: body)
    }
}

extension SnapshotInfo: ResponseEncodable {}
