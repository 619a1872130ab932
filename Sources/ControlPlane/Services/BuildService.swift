import FlareContracts
import Foundation
import NIOCore

/// A template version's build: its bundle (the files the manifest's `files` name) and its log.
/// Only a runtime that builds images (docker) has builds; on the host runtime these refuse.
struct BuildService: Sendable {
    let store: Store
    let templates: TemplateService
    let builds: TemplateBuilds?
    /// One bundle is kept per version: uploads for the same version take turns at keeping theirs.
    let bundleUploads: KeyedMutex

    /// Takes a version's bundle, a tar (zstd allowed) streamed from `body`: size-limited, and
    /// checked like a snapshot restore (no absolute or `..` names, nothing outside the named files,
    /// no escaping links, no devices). A bad bundle is refused and nothing is kept; a good one
    /// queues the build. Of two good uploads for one version the first is kept, the second refused.
    func uploadBundle<Body: AsyncSequence>(_ actor: Caller, template reference: String, version label: String,
                                           _ body: Body) async throws -> TemplateVersionInfo
        where Body.Element == ByteBuffer
    {
        let template = try await templates.authorized(actor, .templateBundleUpload, reference)
        let version = try await templates.version(label, of: template)
        guard let builds else {
            throw ServiceError.conflict("this server's runtime builds no images (host runtime)", code: "no_builds")
        }
        guard version.build.state == .awaitingBundle else {
            throw ServiceError.conflict(
                "version \(version.version) is not waiting for a bundle (\(version.build.state.rawValue))",
                code: "invalid_state")
        }
        let temporary = builds.directory.appendingPathComponent("upload-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: temporary) }
        let upload = try UploadFile(temporary, hashing: false)
        let limit = builds.maxBundleBytes
        try await upload.receive(body) { size in
            guard size <= limit else {
                throw ServiceError(.tooLarge, code: "bundle_too_large", "the bundle is larger than the \(limit)-byte limit")
            }
        }
        try await builds.check(bundle: temporary, paths: version.manifest.files.map { "/" + $0.from })
        try await bundleUploads.withLock(version.id) {
            guard try await store.templateVersion(id: version.id)?.buildState == .awaitingBundle else {
                throw ServiceError.conflict("version \(version.version) is no longer waiting for a bundle",
                                            code: "invalid_state")
            }
            try await blocking {
                try FileManager.default.createDirectory(at: builds.bundleDirectory, withIntermediateDirectories: true)
                guard rename(temporary.path, builds.bundlePath(versionId: version.id).path) == 0 else {
                    throw UploadFileError(description: "cannot keep the bundle: \(String(cString: strerror(errno)))")
                }
            }
            _ = try await store.buildTransition(versionId: version.id, .bundleStored)
        }
        try await store.audit(actor, action: "template.version.bundle", target: version.id,
                              detail: "\(template.name)@\(version.version)")
        return try await store.templateVersion(id: version.id)?.info ?? version.info
    }

    /// A version's build output so far; with `follow`, then what it writes until the build ends
    /// (or waits for a bundle, which nothing but an upload moves on).
    func log(_ actor: Caller, template reference: String, version label: String, follow: Bool) async throws
        -> AsyncThrowingStream<ByteBuffer, any Error>
    {
        let template = try await templates.authorized(actor, .buildLogRead, reference)
        let version = try await templates.version(label, of: template)
        guard let builds else {
            throw ServiceError.notFound("build log: this server's runtime builds no images (host runtime)")
        }
        let path = builds.logPath(versionId: version.id)
        let (store, id) = (store, version.id)
        return AsyncThrowingStream { continuation in
            let task = Task {
                do {
                    var offset: UInt64 = 0
                    while true {
                        let state = try await store.templateVersion(id: id)?.build.state ?? .deadLettered
                        let data = try await blocking { [offset] () -> Data in
                            guard let handle = try? FileHandle(forReadingFrom: path) else { return Data() }
                            defer { try? handle.close() }
                            try handle.seek(toOffset: offset)
                            return try handle.readToEnd() ?? Data()
                        }
                        offset += UInt64(data.count)
                        if !data.isEmpty { continuation.yield(ByteBuffer(bytes: data)) }
                        // A failed attempt is queued again: only the final states end a follow.
                        if !follow || state.isFinal { break }
                        if state == .awaitingBundle {
                            continuation.yield(ByteBuffer(string: "== waiting for the bundle: upload it with "
                                + "`flare template upload … --bundle DIR`; the build starts then\n"))
                            break
                        }
                        try await Task.sleep(for: .milliseconds(250))
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
