import Foundation

/// A value the API's hot routes write straight to bytes, in exactly the form ``FlareJSON/encoder()``
/// would give (sorted keys, nil fields left out, ISO-8601 dates with milliseconds). Lists of a
/// thousand sessions spent most of their time in `JSONEncoder`; the tests check both agree.
public protocol JSONWritable {
    /// Writes the value as one JSON value. Object keys must come in sorted order.
    func write(to writer: inout JSONWriter)
}

/// Appends JSON to a byte array. The caller writes keys in sorted order; the writer places commas.
public struct JSONWriter {
    /// The JSON written so far.
    public private(set) var bytes: [UInt8] = []
    /// Whether the next value in the current object or array needs a comma before it.
    private var needsComma = false

    public init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    /// `value` as JSON bytes.
    public static func encode(_ value: some JSONWritable) -> [UInt8] {
        var writer = JSONWriter()
        value.write(to: &writer)
        return writer.bytes
    }

    /// An array whose elements `body` writes.
    public mutating func array(_ body: (inout JSONWriter) throws -> Void) rethrows {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
        try body(&self)
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// An object whose fields `body` writes, in sorted key order.
    public mutating func object(_ body: (inout JSONWriter) throws -> Void) rethrows {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        try body(&self)
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func field(_ key: StaticString, _ value: String) {
        self.key(key)
        string(value)
    }

    public mutating func field(_ key: StaticString, _ value: some BinaryInteger) {
        self.key(key)
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func field(_ key: StaticString, _ value: Date) {
        self.key(key)
        date(value)
    }

    public mutating func field(_ key: StaticString, _ value: some JSONWritable) {
        self.key(key)
        value.write(to: &self)
    }

    /// Leaves the field out when `value` is nil, as `JSONEncoder` does.
    public mutating func field(_ key: StaticString, _ value: Date?) {
        if let value { field(key, value) }
    }

    public mutating func field(_ key: StaticString, _ value: (some JSONWritable)?) {
        if let value { field(key, value) }
    }

    /// Writes `"key":`; the value that follows calls ``separate()`` like any value, adding no comma.
    private mutating func key(_ key: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Starts a value: a comma when one came before it at this level.
    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// A string field from UTF-8 bytes someone else owns (a database row's text).
    public mutating func field(_ key: StaticString, utf8 value: UnsafeRawBufferPointer) {
        self.key(key)
        string(value.assumingMemoryBound(to: UInt8.self))
    }

    /// A field whose value is already JSON (a stored document written by ``FlareJSON``), copied as is.
    public mutating func field(_ key: StaticString, json value: UnsafeRawBufferPointer) {
        self.key(key)
        separate()
        bytes.append(contentsOf: value)
    }

    /// A JSON string, escaped as `JSONEncoder` escapes (slashes left alone).
    private mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { string($0) }
    }

    private mutating func string(_ utf8: UnsafeBufferPointer<UInt8>) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        var start = 0
        for (index, byte) in utf8.enumerated() where byte < 0x20 || byte == 0x22 || byte == 0x5C {
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start..<index]))
            start = index + 1
            bytes.append(UInt8(ascii: "\\"))
            switch byte {
            case 0x22: bytes.append(UInt8(ascii: "\""))
            case 0x5C: bytes.append(UInt8(ascii: "\\"))
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            default:
                bytes.append(contentsOf: "u00".utf8)
                bytes.append(Self.hex[Int(byte >> 4)])
                bytes.append(Self.hex[Int(byte & 0xF)])
            }
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[start...]))
        bytes.append(UInt8(ascii: "\""))
    }

    /// `2026-12-02T16:12:02.123Z`: UTC, milliseconds truncated, as `ISO8601FormatStyle` writes.
    private mutating func date(_ date: Date) {
        // From the reference date, as Foundation counts: 1970-based seconds have fewer fraction bits.
        let millis = Int64((date.timeIntervalSinceReferenceDate * 1000).rounded(.down)) + 978_307_200_000
        let (days, dayMillis) = millis.quotientAndRemainder(dividingBy: 86_400_000)
        let (day, ms) = dayMillis < 0 ? (days - 1, dayMillis + 86_400_000) : (days, dayMillis)
        let (year, month, dayOfMonth) = Self.civil(fromDays: day)
        separate()
        bytes.append(UInt8(ascii: "\""))
        digits(Int(year), 4)
        bytes.append(UInt8(ascii: "-"))
        digits(month, 2)
        bytes.append(UInt8(ascii: "-"))
        digits(dayOfMonth, 2)
        bytes.append(UInt8(ascii: "T"))
        let seconds = Int(ms / 1000)
        digits(seconds / 3600, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(seconds / 60 % 60, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(seconds % 60, 2)
        bytes.append(UInt8(ascii: "."))
        digits(Int(ms % 1000), 3)
        bytes.append(contentsOf: "Z\"".utf8)
    }

    private mutating func digits(_ value: Int, _ width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var value = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            value %= divisor
            divisor /= 10
        }
    }

    /// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
    private static func civil(fromDays days: Int64) -> (year: Int64, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = Int(dayOfYear - (153 * monthIndex + 2) / 5 + 1)
        let month = Int(monthIndex < 10 ? monthIndex + 3 : monthIndex - 9)
        return (yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }
}

extension SessionInfo: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.object { json in
            json.field("activity", activity)
            json.field("createdAt", createdAt)
            json.field("hostPublicKey", hostPublicKey)
            json.field("id", id)
            json.field("lastHeartbeatAt", lastHeartbeatAt)
            json.field("name", name)
            json.field("state", state.rawValue)
            json.field("stateReason", stateReason)
            json.field("templateId", templateId)
            json.field("templateName", templateName)
            json.field("templateVersion", templateVersion)
            json.field("updatedAt", updatedAt)
        }
    }
}

extension AgentHeartbeat: JSONWritable {
    public func write(to writer: inout JSONWriter) {
        writer.object { json in
            json.field("bytesIn", bytesIn)
            json.field("bytesOut", bytesOut)
            json.field("lastConnectionAt", lastConnectionAt)
            json.field("lastInputAt", lastInputAt)
            json.field("openChannels", openChannels)
            json.field("openConnections", openConnections)
        }
    }
}
