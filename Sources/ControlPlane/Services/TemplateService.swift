import FlareContracts
import Foundation

/// What users do with templates: list, create, read, add versions and promote one. Templates
/// belong to the place (today the account, next a workspace), not to whoever wrote them, so the
/// policy never asks who created one. Builds and bundles are ``BuildService``'s.
struct TemplateService: Sendable {
    let store: Store
    /// Versions are built into images (docker runtime); nil when they are used as they are.
    let builds: TemplateBuilds?
    /// The operator's ceilings on what a template's `resources` may ask for.
    let resourceCeilings: TemplateResources

    func list(_ actor: Caller, limit: Int, after cursor: String?) async throws -> Page<TemplateInfo> {
        try Policy.authorize(actor, .templateList, role: Policy.role(of: actor, inAccount: actor.userId), createdBy: nil)
        let page = try await Paging.fetch(cursor: cursor) {
            try await store.templateListings(ownerId: actor.userId, limit: limit, after: cursor)
        }
        return Page(items: page.items.map { Self.info($0.template, versions: $0.versions) }, next: page.next)
    }

    func create(_ actor: Caller, _ request: TemplateCreateRequest) async throws -> TemplateInfo {
        try Policy.authorize(actor, .templateCreate, role: Policy.role(of: actor, inAccount: actor.userId), createdBy: nil)
        try ResourceName.validate(request.name, what: "template name")
        let template = TemplateRecord(id: FlareID.make("tpl"), ownerId: actor.userId, name: request.name,
                                      description: request.description ?? "", activeVersionId: nil, createdAt: Date())
        do {
            try await store.insertTemplate(template)
        } catch StoreError.duplicate {
            throw ServiceError.conflict("a template named \(request.name) already exists", code: "template_exists")
        }
        try await store.audit(actor, action: "template.create", target: template.id)
        return try await info(template)
    }

    func get(_ actor: Caller, _ reference: String) async throws -> TemplateInfo {
        try await info(try await authorized(actor, .templateRead, reference))
    }

    /// Adds a version from its manifest (checked by ``ManifestValidator`` and against the ceilings);
    /// on a runtime that builds, it waits for its bundle or is queued.
    func createVersion(_ actor: Caller, _ reference: String, _ body: JSONValue) async throws -> TemplateVersionInfo {
        let template = try await authorized(actor, .templateVersionCreate, reference)
        let valid = try ManifestValidator.validate(body)
        try ManifestValidator.check(valid.manifest.resources, within: resourceCeilings)
        try await checkBaseImage(valid.manifest.image, ownerId: template.ownerId)
        let manifestJSON = String(decoding: try FlareJSON.encoder().encode(valid.manifest), as: UTF8.self)
        var version = TemplateVersionRecord(id: FlareID.make("tv"), templateId: template.id, version: valid.version,
                                            manifestJson: manifestJSON, createdAt: Date(), promotedAt: nil)
        if builds != nil {
            version.buildState = valid.manifest.files.isEmpty ? .queued : .awaitingBundle
        }
        do {
            try await store.insertTemplateVersion(version)
        } catch StoreError.duplicate {
            throw ServiceError.conflict("\(template.name) already has a version \(valid.version)", code: "version_exists")
        }
        try await store.audit(actor, action: "template.version.create", target: version.id,
                              detail: "\(template.name)@\(valid.version)")
        return version.info
    }

    /// Makes `version` the one new sessions start from; only a built (or unbuilt-by-design) one.
    func promote(_ actor: Caller, _ reference: String, version label: String) async throws -> TemplateInfo {
        let template = try await authorized(actor, .templatePromote, reference)
        let version = try await version(label, of: template)
        guard version.build.state.isUsable else {
            throw ServiceError.conflict(
                "version \(version.version) of \(template.name) has not been built (\(version.build.state.rawValue)); "
                    + "see `flare build log \(template.name)@\(version.version)`", code: "version_not_built")
        }
        try await store.promote(templateId: template.id, versionId: version.id, at: Date())
        try await store.audit(actor, action: "template.promote", target: version.id,
                              detail: "\(template.name)@\(version.version)")
        return try await get(actor, template.id)
    }

    /// The template `reference` names (or numbers) once the policy allows `action` on it; one the
    /// actor has no role on is not found.
    func authorized(_ actor: Caller, _ action: Action, _ reference: String) async throws -> TemplateRecord {
        guard let template = try await store.template(ownerId: actor.userId, reference: reference) else {
            throw ServiceError.notFound("template \(reference)")
        }
        try Policy.authorize(actor, action, role: Policy.role(of: actor, inAccount: template.ownerId), createdBy: nil)
        return template
    }

    /// A version of `template` by label or id.
    func version(_ reference: String, of template: TemplateRecord) async throws -> TemplateVersionRecord {
        guard let version = try await store.templateVersions(templateId: template.id)
            .first(where: { $0.version == reference || $0.id == reference })
        else { throw ServiceError.notFound("version \(reference) of \(template.name)") }
        return version
    }

    /// A template may build on the operator's images or on its own place's template images, never
    /// on another account's (whose files, and whatever its setup left, are theirs).
    func checkBaseImage(_ image: String, ownerId: String) async throws {
        let prefix = "burstflare/template-"
        guard image.lowercased().hasPrefix(prefix) else { return }
        let id = String(image.dropFirst(prefix.count).prefix { $0 != ":" && $0 != "@" })
        guard let base = try await store.template(idIgnoringCase: id), base.ownerId == ownerId else {
            throw ServiceError.invalid("manifest.image \(image) is not an image this server offers you: "
                + "use an operator image or one of your own templates", code: "invalid_image")
        }
    }

    func info(_ template: TemplateRecord) async throws -> TemplateInfo {
        Self.info(template, versions: try await store.templateVersions(templateId: template.id))
    }

    static func info(_ template: TemplateRecord, versions records: [TemplateVersionRecord]) -> TemplateInfo {
        let versions = records.map(\.info)
        return TemplateInfo(id: template.id, name: template.name, description: template.description,
                            activeVersion: versions.first { $0.id == template.activeVersionId },
                            versions: versions, createdAt: template.createdAt)
    }
}
