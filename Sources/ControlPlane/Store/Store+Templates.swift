import FlareContracts
import Foundation
import GRDB

extension Store {
    func insertTemplate(_ template: TemplateRecord) async throws {
        try await write { try template.insert($0) }
    }

    /// The owner's template named `reference`, or with that id.
    func template(ownerId: String, reference: String) async throws -> TemplateRecord? {
        try await read { db in
            try TemplateRecord
                .filter(Column("owner_id") == ownerId && (Column("id") == reference || Column("name") == reference))
                .fetchOne(db)
        }
    }

    /// The template whose id is `id` in any letter case (image tags are lowercase).
    func template(idIgnoringCase id: String) async throws -> TemplateRecord? {
        try await read { try TemplateRecord.filter(sql: "lower(id) = ?", arguments: [id.lowercased()]).fetchOne($0) }
    }

    func insertTemplateVersion(_ version: TemplateVersionRecord) async throws {
        try await write { try version.insert($0) }
    }

    func templateVersions(templateId: String) async throws -> [TemplateVersionRecord] {
        try await read { db in
            try TemplateVersionRecord.filter(Column("template_id") == templateId).order(Column("created_at"))
                .fetchAll(db)
        }
    }

    func templateVersion(id: String) async throws -> TemplateVersionRecord? {
        try await read { try TemplateVersionRecord.fetchOne($0, key: id) }
    }

    /// Makes `versionId` the version new sessions of the template use.
    func promote(templateId: String, versionId: String, at date: Date) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE template_versions SET promoted_at = ? WHERE id = ?", arguments: [date, versionId])
            try db.execute(sql: "UPDATE templates SET active_version_id = ? WHERE id = ?",
                           arguments: [versionId, templateId])
        }
    }
}

extension Store {
    /// Takes the oldest queued build, marking it `building` with one more attempt; nil if none.
    /// Queued builds, oldest first, with their template's owner.
    func queuedBuilds() async throws -> [(version: TemplateVersionRecord, ownerId: String)] {
        try await read { db in
            let versions = try TemplateVersionRecord.filter(Column("build_state") == TemplateBuildState.queued.rawValue)
                .order(Column("created_at")).fetchAll(db)
            return try versions.compactMap { version in
                try TemplateRecord.fetchOne(db, key: version.templateId).map { (version, $0.ownerId) }
            }
        }
    }

    /// Moves a queued build to building (one attempt more); nil if it is no longer queued.
    func claimBuild(id: String) async throws -> TemplateVersionRecord? {
        try await write { db in
            guard var version = try TemplateVersionRecord.fetchOne(db, key: id),
                  version.buildState == TemplateBuildState.queued.rawValue
            else { return nil }
            version.buildState = TemplateBuildState.building.rawValue
            version.buildAttempts += 1
            try version.update(db)
            return version
        }
    }

    func updateTemplateVersion(id: String, _ change: @escaping @Sendable (inout TemplateVersionRecord) -> Void)
        async throws
    {
        try await write { db in
            guard var version = try TemplateVersionRecord.fetchOne(db, key: id) else { return }
            change(&version)
            try version.update(db)
        }
    }

    /// Builds interrupted by a server restart go back to the queue.
    func requeueInterruptedBuilds() async throws {
        try await write { db in
            try db.execute(sql: "UPDATE template_versions SET build_state = 'queued' WHERE build_state = 'building'")
        }
    }
}
