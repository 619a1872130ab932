import FlareContracts
import Foundation
import Hummingbird

/// Snapshot routes, for agents and for users: adapters over ``SnapshotService``.
extension ControlPlaneAPI {
    /// Snapshot upload and download for agents.
    func addAgentSnapshotRoutes(to group: RouterGroup<AgentRequestContext>) {
        group.on(Endpoints.Agent.uploadSnapshot) { request, context in
            func header(_ name: String) -> String? { request.headers[.init(name)!] }
            let upload = SnapshotService.Upload(
                sha256: header("x-flare-sha256") ?? "", length: request.headers[.contentLength].flatMap { Int64($0) },
                entryCount: Int(header("x-flare-entry-count") ?? "") ?? 0,
                totalBytes: Int64(header("x-flare-total-bytes") ?? "") ?? 0, reason: header("x-flare-reason") ?? "agent")
            return .created(try await snapshots.store(context.agent, upload, request.body))
        }

        group.on(Endpoints.Agent.snapshotContent) { _, context in
            try await archiveResponse(try await snapshots.archive(context.agent, snapshot: try context.parameters.require("id")),
                                      context: context)
        }
    }

    /// Snapshots as users see them.
    func addUserSnapshotRoutes(to group: RouterGroup<UserRequestContext>) {
        group.on(Endpoints.Snapshots.list) { _, context in
            .ok(try await snapshots.list(context.caller, session: try context.parameters.require("session")))
        }

        group.on(Endpoints.Snapshots.content) { _, context in
            let archive = try await snapshots.archive(context.caller, session: try context.parameters.require("session"),
                                                      snapshot: try context.parameters.require("id"))
            return try await archiveResponse(archive, context: context)
        }

        group.on(Endpoints.Snapshots.save) { _, context in
            .created(try await snapshots.save(context.caller, session: try context.parameters.require("session")))
        }

        // 200 when the running session restored it now, 202 when its next wake will.
        group.on(Endpoints.Snapshots.restore) { _, context in
            switch try await snapshots.restore(context.caller, session: try context.parameters.require("session"),
                                               snapshot: try context.parameters.require("id")) {
            case .now(let info): .ok(info)
            case .atNextWake(let info): .accepted(info)
            }
        }

        group.on(Endpoints.Snapshots.delete) { _, context in
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
