import FlareContracts
import Foundation
import GRDB

/// A row of ``Store/sessionListingSQL`` written straight to the API's JSON for a ``SessionInfo``,
/// from the row's own bytes: no `String` or `Date` is made on the way. A list of 1,000 sessions
/// spent most of its time making them. The output is what encoding the row's ``SessionListing``
/// as a ``SessionInfo`` gives (the tests compare the two).
extension SessionListing {
    static func writeJSON(row: Row, to json: inout JSONWriter) throws {
        let state = try row.withUnsafeData(atIndex: 3) {
            $0.flatMap { SessionState(rawValue: String(decoding: $0, as: UTF8.self)) }
        } ?? .failed
        try json.object { json in
            // A stored heartbeat is FlareJSON's own encoding of an AgentHeartbeat: copied as is.
            if state == .running { try row.withUnsafeData(atIndex: 7) { $0?.withUnsafeBytes { json.field("activity", json: $0) } } }
            try date(row, 8, "createdAt", &json)
            try text(row, 5, "hostPublicKey", &json)
            try text(row, 0, "id", &json)
            try date(row, 6, "lastHeartbeatAt", &json)
            try text(row, 1, "name", &json)
            json.field("state", state.rawValue)
            try text(row, 4, "stateReason", &json)
            try text(row, 2, "templateId", &json)
            try text(row, 10, "templateName", &json)
            try text(row, 11, "templateVersion", &json)
            try date(row, 9, "updatedAt", &json)
        }
    }

    /// A text column as a string field, left out when NULL.
    private static func text(_ row: Row, _ index: Int, _ key: StaticString, _ json: inout JSONWriter) throws {
        try row.withUnsafeData(atIndex: index) { data in
            data?.withUnsafeBytes { json.field(key, utf8: $0) }
        }
    }

    /// A date column as an ISO-8601 field, left out when NULL. GRDB stores `2026-12-02 16:12:02.123`
    /// (UTC), which becomes `"2026-12-02T16:12:02.123Z"` by replacing two bytes; anything else is
    /// read as a `Date` and formatted.
    private static func date(_ row: Row, _ index: Int, _ key: StaticString, _ json: inout JSONWriter) throws {
        let copied = try row.withUnsafeData(atIndex: index) { data -> Bool in
            guard let data else { return true }
            guard data.count == 23, data[data.startIndex + 10] == UInt8(ascii: " ") else { return false }
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 26) { out in
                out[0] = UInt8(ascii: "\"")
                _ = UnsafeMutableBufferPointer(rebasing: out[1..<24]).initialize(from: data)
                out[11] = UInt8(ascii: "T")
                out[24] = UInt8(ascii: "Z")
                out[25] = UInt8(ascii: "\"")
                json.field(key, json: UnsafeRawBufferPointer(out))
            }
            return true
        }
        if !copied, let date = row[index] as Date? {
            json.field(key, date)
        }
    }
}
