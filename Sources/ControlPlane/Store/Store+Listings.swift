import FlareContracts
import Foundation
import GRDB

/// A page of a list: its items, and the cursor of the next page when there is one.
struct Page<Item: Sendable>: Sendable {
    var items: [Item]
    var next: String?
}

/// A page of a list already written as a JSON array.
struct JSONPage: Sendable {
    var json: [UInt8]
    var next: String?
}

/// What a session's listing shows, with its template's name and version, read in the same query.
struct SessionListing: Sendable {
    var id: String
    var name: String
    var templateId: String
    var state: SessionState
    var stateReason: String
    var hostPublicKey: String
    var lastHeartbeatAt: Date?
    var activityJson: String?
    var createdAt: Date
    var updatedAt: Date
    var templateName: String
    var templateVersion: String

    init(_ session: SessionRecord, templateName: String, templateVersion: String) {
        (id, name, templateId, state, stateReason) = (session.id, session.name, session.templateId, session.state,
                                                      session.stateReason)
        (hostPublicKey, lastHeartbeatAt, activityJson) = (session.hostPublicKey, session.lastHeartbeatAt, session.activityJson)
        (createdAt, updatedAt) = (session.createdAt, session.updatedAt)
        self.templateName = templateName
        self.templateVersion = templateVersion
    }

    /// From a row of ``Store/sessionListingSQL``, by column position (decoding rows by name
    /// through Codable cost a list of 1,000 most of its time).
    init(row: Row) {
        id = row[0]
        name = row[1]
        templateId = row[2]
        state = SessionState(rawValue: row[3]) ?? .failed
        stateReason = row[4]
        hostPublicKey = row[5]
        lastHeartbeatAt = row[6]
        activityJson = row[7]
        createdAt = row[8]
        updatedAt = row[9]
        templateName = row[10]
        templateVersion = row[11]
    }
}

/// List queries: a bounded number of statements whatever the list's length, ordered by creation
/// and paged by the id of the last item seen (`cursor`), on indexes for their filters.
extension Store {
    static let sessionListingSQL = """
        SELECT sessions.id, sessions.name, sessions.template_id, sessions.state, sessions.state_reason,
               sessions.host_public_key, sessions.last_heartbeat_at, sessions.activity_json, sessions.created_at,
               sessions.updated_at, IFNULL(templates.name, ''), IFNULL(template_versions.version, '')
        FROM sessions
        LEFT JOIN templates ON templates.id = sessions.template_id
        LEFT JOIN template_versions ON template_versions.id = sessions.template_version_id
        """

    /// A page of sessions: ``sessionListingSQL``'s columns without the joins (column 10 is the
    /// template version's id). The labels come from ``TemplateLabels``, read once per page: the
    /// joins were a sixth of a 1,000-session list's time.
    static let sessionPageSQL = """
        SELECT id, name, template_id, state, state_reason, host_public_key, last_heartbeat_at, activity_json,
               created_at, updated_at, template_version_id
        FROM sessions
        """

    /// The owner's live sessions, oldest first, `limit` at most, after the session `cursor`, written
    /// as the API's JSON array of ``SessionInfo`` (see ``SessionListing/writeJSON(row:labels:to:)``):
    /// three statements at most (the cursor, the owner's template labels, the page).
    /// Throws ``StoreError/unknownCursor`` for a cursor that is not one of the owner's sessions.
    func sessionListingsJSON(ownerId: String, limit: Int, after cursor: String?) async throws -> JSONPage {
        try await read { db in
            var sql = Self.sessionPageSQL + " WHERE owner_id = ? AND state != 'deleted'"
            var arguments: StatementArguments = [ownerId]
            if let cursor {
                guard let start = try Row.fetchOne(db.cachedStatement(sql: "SELECT created_at, id FROM sessions WHERE id = ? AND owner_id = ?"),
                                                   arguments: [cursor, ownerId])
                else { throw StoreError.unknownCursor }
                sql += " AND (created_at, id) > (?, ?)"
                arguments += [start["created_at"] as DatabaseValue, start["id"] as DatabaseValue]
            }
            sql += " ORDER BY created_at, id LIMIT ?"
            arguments += [limit + 1]
            var labels = try TemplateLabels(db, ownerId: ownerId)
            var json = JSONWriter(capacity: 64 + min(limit, 1000) * 512)
            var (count, last, next): (Int, String?, String?) = (0, nil, nil)
            try json.array { json in
                let statement = try db.cachedStatement(sql: sql)
                let rows = try Row.fetchCursor(statement, arguments: arguments)
                while let row = try rows.next() {
                    count += 1
                    guard count <= limit else { next = last; break }
                    SessionListing.writeJSON(row: statement, labels: &labels, to: &json)
                    if count == limit { last = row[0] }
                }
            }
            return JSONPage(json: json.bytes, next: next)
        }
    }

    /// The owner's live session named `reference`, or with that id, with its template's name and version.
    func sessionListing(ownerId: String, reference: String) async throws -> SessionListing? {
        try await read { db in
            try Row.fetchOne(db.cachedStatement(sql: Self.sessionListingSQL + " WHERE " + Self.sessionReferenceSQL),
                             arguments: Self.sessionReferenceArguments(ownerId: ownerId, reference: reference))
                .map(SessionListing.init(row:))
        }
    }

    /// A template's name and a version's number, for a session's listing: one statement.
    func templateLabel(templateId: String, versionId: String) async throws -> (name: String, version: String) {
        try await read { db in
            let row = try Row.fetchOne(db, sql: """
                SELECT IFNULL((SELECT name FROM templates WHERE id = ?), '') AS name,
                       IFNULL((SELECT version FROM template_versions WHERE id = ?), '') AS version
                """, arguments: [templateId, versionId])
            return (row?["name"] ?? "", row?["version"] ?? "")
        }
    }

    /// The owner's templates by name, `limit` at most after the template `cursor`, each with all
    /// its versions: two statements.
    func templateListings(ownerId: String, limit: Int, after cursor: String?) async throws
        -> Page<(template: TemplateRecord, versions: [TemplateVersionRecord])>
    {
        try await read { db in
            var request = TemplateRecord.filter(Column("owner_id") == ownerId)
            if let cursor {
                guard let start = try TemplateRecord.filter(Column("owner_id") == ownerId && Column("id") == cursor).fetchOne(db)
                else { throw StoreError.unknownCursor }
                request = request.filter(Column("name") > start.name)
            }
            let templates = try request.order(Column("name")).limit(limit + 1).fetchAll(db)
            let page = Array(templates.prefix(limit))
            let versions = try TemplateVersionRecord.filter(page.map(\.id).contains(Column("template_id")))
                .order(Column("created_at")).fetchAll(db)
            let byTemplate = Dictionary(grouping: versions, by: \.templateId)
            return Page(items: page.map { ($0, byTemplate[$0.id] ?? []) },
                        next: templates.count > limit ? page.last?.id : nil)
        }
    }
}
