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

    /// Applies `event` to the version's build state through ``TemplateBuildStateMachine``, in one
    /// transaction; `update` may change the build's other columns when it moves. The only way a
    /// build's state changes. Nil when there is no such version.
    func buildTransition(
        versionId: String, _ event: TemplateBuildStateMachine.Event,
        update: @escaping @Sendable (inout TemplateVersionRecord) -> Void = { _ in }
    ) async throws -> BuildTransition? {
        try await write { db in
            guard let version = try TemplateVersionRecord.fetchOne(db, key: versionId) else { return nil }
            return try Self.buildTransition(version, event, update: update, db)
        }
    }

    private static func buildTransition(
        _ version: TemplateVersionRecord, _ event: TemplateBuildStateMachine.Event,
        update: (inout TemplateVersionRecord) -> Void, _ db: Database
    ) throws -> BuildTransition {
        switch TemplateBuildStateMachine.apply(event, to: version.buildState) {
        case .refused(let why):
            return .refused(why, version)
        case .moveTo(let state):
            var moved = version
            update(&moved)
            moved.buildState = state
            try moved.update(db)
            return .moved(moved)
        }
    }

    /// Changes a version's columns other than its build state (which only
    /// ``buildTransition(versionId:_:update:)`` changes).
    func updateTemplateVersion(id: String, _ change: @escaping @Sendable (inout TemplateVersionRecord) -> Void)
        async throws
    {
        try await write { db in
            guard var version = try TemplateVersionRecord.fetchOne(db, key: id) else { return }
            let state = version.buildState
            change(&version)
            guard version.buildState == state else { throw StoreError.stateChangeOutsideMachine }
            try version.update(db)
        }
    }

    /// Builds interrupted by a server restart go back to the queue.
    func requeueInterruptedBuilds() async throws {
        try await write { db in
            for version in try TemplateVersionRecord.filter(Column("build_state") == TemplateBuildState.building.rawValue)
                .fetchAll(db)
            {
                _ = try Self.buildTransition(version, .interrupted, update: { _ in }, db)
            }
        }
    }
}

/// What applying an event to a stored build did.
enum BuildTransition: Sendable {
    case moved(TemplateVersionRecord)
    case refused(String, TemplateVersionRecord)
}
