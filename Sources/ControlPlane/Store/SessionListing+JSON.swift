import FlareContracts
import Foundation
import GRDB
import GRDBSQLite

/// A row of ``Store/sessionListingSQL`` written straight to the API's JSON for a ``SessionInfo``,
/// from the bytes SQLite holds for the current row: no `String`, `Date` or `Data` is made on the
/// way. A list of 1,000 sessions spent most of its time making them. The output is what encoding
/// the row's ``SessionListing`` as a ``SessionInfo`` gives (the tests compare the two).
extension SessionListing {
    /// Writes the row `statement` stands on (a statement of ``Store/sessionPageSQL``, stepped by a
    /// GRDB cursor, so valid until the cursor's next step), its template named by `labels`.
    static func writeJSON(row statement: Statement, labels: inout TemplateLabels, to json: inout JSONWriter) {
        let row = ColumnReader(statement: statement.sqliteStatement)
        let state = row.withText(3) { $0.flatMap { SessionState(rawValue: String(decoding: $0, as: UTF8.self)) } } ?? .failed
        json.object { json in
            // A stored heartbeat is FlareJSON's own encoding of an AgentHeartbeat: copied as is.
            if state == .running { row.withText(7) { $0.map { json.field("activity", json: UnsafeRawBufferPointer($0)) } } }
            row.date(8, "createdAt", &json)
            row.text(5, "hostPublicKey", &json)
            row.text(0, "id", &json)
            row.date(6, "lastHeartbeatAt", &json)
            row.text(1, "name", &json)
            json.field("state", state.rawValue)
            row.text(4, "stateReason", &json)
            row.text(2, "templateId", &json)
            let label = row.withText(10) { labels.label(versionId: $0) }
            label.name.withUnsafeBytes { json.field("templateName", utf8: $0) }
            label.version.withUnsafeBytes { json.field("templateVersion", utf8: $0) }
            row.date(9, "updatedAt", &json)
        }
    }
}

/// The current row's columns of a stepped SQLite statement, as bytes SQLite owns.
private struct ColumnReader {
    let statement: SQLiteStatement

    /// The column's text (a NULL column is nil: SQLite answers no pointer for it, and one to an
    /// empty string for ''), valid only inside `body`.
    func withText<T>(_ index: Int32, _ body: (UnsafeBufferPointer<UInt8>?) -> T) -> T {
        guard let text = sqlite3_column_text(statement, index) else { return body(nil) }
        return body(UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(statement, index))))
    }

    /// A text column as a string field, left out when NULL.
    func text(_ index: Int32, _ key: StaticString, _ json: inout JSONWriter) {
        withText(index) { $0.map { json.field(key, utf8: UnsafeRawBufferPointer($0)) } }
    }

    /// A date column as an ISO-8601 field, left out when NULL. GRDB stores `2026-12-02 16:12:02.123`
    /// (UTC), which becomes `"2026-12-02T16:12:02.123Z"` by replacing two bytes; anything else is
    /// read as GRDB reads a `Date` and formatted.
    func date(_ index: Int32, _ key: StaticString, _ json: inout JSONWriter) {
        let copied = sqlite3_column_type(statement, index) == SQLITE_TEXT && withText(index) { text -> Bool in
            guard let text, text.count == 23, text[10] == UInt8(ascii: " ") else { return false }
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 26) { out in
                out[0] = UInt8(ascii: "\"")
                _ = UnsafeMutableBufferPointer(rebasing: out[1..<24]).initialize(from: text)
                out[11] = UInt8(ascii: "T")
                out[24] = UInt8(ascii: "Z")
                out[25] = UInt8(ascii: "\"")
                json.field(key, json: UnsafeRawBufferPointer(out))
            }
            return true
        }
        if !copied, let date = Date.fromDatabaseValue(DatabaseValue(sqliteStatement: statement, index: index)) {
            json.field(key, date)
        }
    }
}

/// The name and version of each of an owner's template versions, read in one statement, for the
/// sessions of a page. A version that is not there (its template was deleted) has empty labels,
/// as the single-session read's `IFNULL` gives.
struct TemplateLabels {
    struct Label {
        var name: [UInt8]
        var version: [UInt8]
    }

    private var labels: [String: Label] = [:]
    /// The last version asked for: a page's sessions mostly share a few versions.
    private var last: (id: [UInt8], label: Label)?
    private static let none = Label(name: [], version: [])

    init(_ db: Database, ownerId: String) throws {
        let rows = try Row.fetchCursor(db.cachedStatement(sql: """
            SELECT template_versions.id, templates.name, template_versions.version
            FROM templates JOIN template_versions ON template_versions.template_id = templates.id
            WHERE templates.owner_id = ?
            """), arguments: [ownerId])
        while let row = try rows.next() {
            labels[row[0]] = Label(name: Array((row[1] as String).utf8), version: Array((row[2] as String).utf8))
        }
    }

    mutating func label(versionId: UnsafeBufferPointer<UInt8>?) -> Label {
        guard let versionId else { return Self.none }
        if let last, last.id.elementsEqual(versionId) { return last.label }
        let label = labels[String(decoding: versionId, as: UTF8.self)] ?? Self.none
        last = (Array(versionId), label)
        return label
    }
}
