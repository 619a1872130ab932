import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `POST /api/templates/{template}/promote`.
struct PromoteRequest: Codable {
    var version: String
}

extension ControlPlaneAPI {
    func addTemplateRoutes(to group: RouterGroup<FlareRequestContext>) {
        group.get("/templates") { request, context -> EditedResponse<[TemplateInfo]> in
            let user = try context.requireUser()
            let paging = try ListPaging(request)
            let page = try await paging.fetch { try await store.templateListings(ownerId: user.id, limit: $0, after: $1) }
            return paging.response(page.items.map { Self.templateInfo($0.template, versions: $0.versions) }, next: page.next)
        }

        group.post("/templates") { request, context -> EditedResponse<TemplateInfo> in
            let user = try context.requireUser()
            let body = try await request.decodeJSON(TemplateCreateRequest.self, context: context)
            try ResourceName.validate(body.name, what: "template name")
            let template = TemplateRecord(id: FlareID.make("tpl"), ownerId: user.id, name: body.name,
                                          description: body.description ?? "", activeVersionId: nil, createdAt: Date())
            do {
                try await store.insertTemplate(template)
            } catch StoreError.duplicate {
                throw APIError.conflict("a template named \(body.name) already exists", code: "template_exists")
            }
            try await store.audit(userId: user.id, action: "template.create", target: template.id)
            return EditedResponse(status: .created, response: try await templateInfo(template))
        }

        group.get("/templates/{template}") { _, context in
            try await templateInfo(try await template(context))
        }

        group.post("/templates/{template}/versions") { request, context -> EditedResponse<TemplateVersionInfo> in
            let user = try context.requireUser()
            let template = try await template(context)
            let body = try await request.decodeJSON(JSONValue.self, context: context)
            let valid = try ManifestValidator.validate(body)
            try ManifestValidator.check(valid.manifest.resources, within: resourceCeilings)
            try await checkBaseImage(valid.manifest.image, ownerId: user.id)
            let manifestJSON = String(decoding: try FlareJSON.encoder().encode(valid.manifest), as: UTF8.self)
            var version = TemplateVersionRecord(id: FlareID.make("tv"), templateId: template.id, version: valid.version,
                                                manifestJson: manifestJSON, createdAt: Date(), promotedAt: nil)
            if builds != nil {
                version.buildState = valid.manifest.files.isEmpty ? .queued : .awaitingBundle
            }
            do {
                try await store.insertTemplateVersion(version)
            } catch StoreError.duplicate {
                throw APIError.conflict("\(template.name) already has a version \(valid.version)",
                                        code: "version_exists")
            }
            try await store.audit(userId: user.id, action: "template.version.create", target: version.id,
                                  detail: "\(template.name)@\(valid.version)")
            return EditedResponse(status: .created, response: version.info)
        }

        group.post("/templates/{template}/promote") { request, context -> TemplateInfo in
            let user = try context.requireUser()
            let template = try await template(context)
            let body = try await request.decodeJSON(PromoteRequest.self, context: context)
            let version = try await version(body.version, of: template)
            guard version.build.state.isUsable else {
                throw APIError.conflict(
                    "version \(version.version) of \(template.name) has not been built (\(version.build.state.rawValue)); "
                        + "see `flare build log \(template.name)@\(version.version)`", code: "version_not_built")
            }
            try await store.promote(templateId: template.id, versionId: version.id, at: Date())
            try await store.audit(userId: user.id, action: "template.promote", target: version.id,
                                  detail: "\(template.name)@\(version.version)")
            return try await templateInfo(try await self.template(context))
        }
    }

    /// `GET /api/templates/{template}/versions/{version}/build-log[?follow=true]`: the build's output;
    /// with `follow`, streamed until the build ends.
    func addBuildLogRoute(to group: RouterGroup<FlareRequestContext>) {
        group.get("/templates/{template}/versions/{version}/build-log") { request, context -> Response in
            let template = try await template(context)
            let version = try await version(try context.parameters.require("version"), of: template)
            guard let builds else {
                throw APIError.notFound("build log: this server's runtime builds no images (host runtime)")
            }
            let follow = request.uri.queryParameters["follow"].map { $0 == "true" || $0 == "1" } ?? false
            let path = builds.logPath(versionId: version.id)
            let store = self.store
            let id = version.id
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: .init { writer in
                var offset: UInt64 = 0
                while true {
                    let state = try await store.templateVersion(id: id)?.build.state ?? .deadLettered
                    if let handle = try? FileHandle(forReadingFrom: path) {
                        try handle.seek(toOffset: offset)
                        let data = try handle.readToEnd() ?? Data()
                        try? handle.close()
                        offset += UInt64(data.count)
                        if !data.isEmpty { try await writer.write(ByteBuffer(data: data)) }
                    }
                    // A failed attempt is queued again: only the final states end a follow, and a
                    // version waiting for its bundle, which cannot progress until someone uploads it.
                    if !follow || state.isFinal { break }
                    if state == .awaitingBundle {
                        try await writer.write(ByteBuffer(string: "== waiting for the bundle: upload it with "
                            + "`flare template upload … --bundle DIR`; the build starts then\n"))
                        break
                    }
                    try await Task.sleep(for: .milliseconds(250))
                }
                try await writer.finish(nil)
            })
        }
    }

    /// `PUT /api/templates/{template}/versions/{version}/bundle`: the files the manifest's `files`
    /// name, as a tar (zstd allowed). Size-limited (413), and checked like a snapshot restore: no
    /// absolute or `..` names, nothing outside the named files, no escaping links, no devices.
    /// A bad bundle is refused and nothing is kept; a good one queues the build.
    func addBundleRoute(to group: RouterGroup<FlareRequestContext>) {
        group.put("/templates/{template}/versions/{version}/bundle") { request, context -> TemplateVersionInfo in
            let user = try context.requireUser()
            let template = try await template(context)
            let version = try await version(try context.parameters.require("version"), of: template)
            guard let builds else {
                throw APIError.conflict("this server's runtime builds no images (host runtime)", code: "no_builds")
            }
            guard version.build.state == .awaitingBundle else {
                throw APIError.conflict("version \(version.version) is not waiting for a bundle (\(version.build.state.rawValue))",
                                        code: "invalid_state")
            }
            let temporary = builds.directory.appendingPathComponent("upload-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: temporary) }
            try await Self.receive(request.body, into: temporary, limit: builds.maxBundleBytes)
            let paths = version.manifest.files.map { "/" + $0.from }
            try await builds.check(bundle: temporary, paths: paths)
            // Two uploads for one version both pass their checks: only the first one is kept, and
            // a later one changes nothing (the bundle the build uses is the one answered for).
            try await bundleUploads.withLock(version.id) {
                guard try await store.templateVersion(id: version.id)?.buildState == .awaitingBundle else {
                    throw APIError.conflict("version \(version.version) is no longer waiting for a bundle",
                                            code: "invalid_state")
                }
                try FileManager.default.createDirectory(at: builds.bundleDirectory, withIntermediateDirectories: true)
                guard rename(temporary.path, builds.bundlePath(versionId: version.id).path) == 0 else {
                    throw APIError(.internalServerError, code: "internal", "cannot keep the bundle")
                }
                _ = try await store.buildTransition(versionId: version.id, .bundleStored)
            }
            try await store.audit(userId: user.id, action: "template.version.bundle", target: version.id,
                                  detail: "\(template.name)@\(version.version)")
            return try await store.templateVersion(id: version.id)?.info ?? version.info
        }
    }

    /// Streams a request body to `file`, refusing it (413) past `limit` bytes.
    static func receive(_ body: RequestBody, into file: URL, limit: Int64) async throws {
        guard FileManager.default.createFile(atPath: file.path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = try? FileHandle(forWritingTo: file)
        else { throw APIError(.internalServerError, code: "internal", "cannot store the upload") }
        defer { try? handle.close() }
        var size: Int64 = 0
        for try await buffer in body {
            size += Int64(buffer.readableBytes)
            guard size <= limit else {
                throw APIError(.contentTooLarge, code: "bundle_too_large", "the bundle is larger than the \(limit)-byte limit")
            }
            try handle.write(contentsOf: Data(buffer: buffer))
        }
    }

    /// A version of `template` by label or id, or 404.
    func version(_ reference: String, of template: TemplateRecord) async throws -> TemplateVersionRecord {
        guard let version = try await store.templateVersions(templateId: template.id)
            .first(where: { $0.version == reference || $0.id == reference })
        else { throw APIError.notFound("version \(reference) of \(template.name)") }
        return version
    }

    func template(_ context: FlareRequestContext) async throws -> TemplateRecord {
        let user = try context.requireUser()
        let reference = try context.parameters.require("template")
        guard let template = try await store.template(ownerId: user.id, reference: reference) else {
            throw APIError.notFound("template \(reference)")
        }
        return template
    }

    /// A template may build on the operator's images or on the owner's own template images, never
    /// on another account's (whose files, and whatever its setup left, are theirs).
    func checkBaseImage(_ image: String, ownerId: String) async throws {
        let prefix = "burstflare/template-"
        guard image.lowercased().hasPrefix(prefix) else { return }
        let id = String(image.dropFirst(prefix.count).prefix { $0 != ":" && $0 != "@" })
        guard let base = try await store.template(idIgnoringCase: id), base.ownerId == ownerId else {
            throw APIError.badRequest("manifest.image \(image) is not an image this server offers you: "
                + "use an operator image or one of your own templates", code: "invalid_image")
        }
    }

    func templateInfo(_ template: TemplateRecord) async throws -> TemplateInfo {
        Self.templateInfo(template, versions: try await store.templateVersions(templateId: template.id))
    }

    static func templateInfo(_ template: TemplateRecord, versions records: [TemplateVersionRecord]) -> TemplateInfo {
        let versions = records.map(\.info)
        return TemplateInfo(id: template.id, name: template.name, description: template.description,
                            activeVersion: versions.first { $0.id == template.activeVersionId },
                            versions: versions, createdAt: template.createdAt)
    }
}
