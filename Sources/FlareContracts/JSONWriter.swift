import Foundation

/// A value the API's hot routes write straight to bytes, in exactly the form ``FlareJSON/encoder()``
/// would give (sorted keys, nil fields left out, ISO-8601 dates with milliseconds). Lists of a
/// thousand sessions spent most of their time in `JSONEncoder`; the tests check both agree.
public protocol JSONWritable {
    /// Writes the value as one JSON value. Object keys must come in sorted order.
    func write(to writer: inout JSONWriter)
}

/// Appends JSON to a buffer it owns. The caller writes keys in sorted order; the writer places
/// commas. Not copyable: the buffer is a plain allocation (an array's uniqueness and capacity checks
/// on every appended byte were a tenth of a 1,000-session list), freed when the writer goes away.
public struct JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private var capacity: Int
    /// Whether the next value in the current object or array needs a comma before it.
    private var needsComma = false

    public init(capacity: Int = 1024) {
        self.capacity = max(capacity, 64)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The JSON written so far.
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count + extra > capacity { grow(to: count + extra) }
    }

    private mutating func grow(to needed: Int) {
        let larger = max(capacity * 2, needed)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.initialize(from: base, count: count)
        base.deallocate()
        (base, capacity) = (moved, larger)
    }

    @inline(__always)
    private mutating func append(_ byte: UInt8) {
        reserve(1)
        base[count] = byte
        count += 1
    }

    @inline(__always)
    private mutating func append(_ buffer: UnsafeBufferPointer<UInt8>) {
        guard let start = buffer.baseAddress, buffer.count > 0 else { return }
        reserve(buffer.count)
        (base + count).update(from: start, count: buffer.count)
        count += buffer.count
    }

    private mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append($0) }
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
        append(UInt8(ascii: "["))
        needsComma = false
        try body(&self)
        append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// An object whose fields `body` writes, in sorted key order.
    public mutating func object(_ body: (inout JSONWriter) throws -> Void) rethrows {
        separate()
        append(UInt8(ascii: "{"))
        needsComma = false
        try body(&self)
        append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func field(_ key: StaticString, _ value: String) {
        self.key(key)
        string(value)
    }

    public mutating func field(_ key: StaticString, _ value: some BinaryInteger) {
        self.key(key)
        separate()
        append(String(value))
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
        key.withUTF8Buffer { key in
            reserve(key.count + 4)
            if needsComma {
                base[count] = UInt8(ascii: ",")
                count += 1
            }
            base[count] = UInt8(ascii: "\"")
            if let start = key.baseAddress { (base + count + 1).update(from: start, count: key.count) }
            base[count + 1 + key.count] = UInt8(ascii: "\"")
            base[count + 2 + key.count] = UInt8(ascii: ":")
            count += key.count + 3
        }
        needsComma = false
    }

    /// Starts a value: a comma when one came before it at this level.
    private mutating func separate() {
        if needsComma { append(UInt8(ascii: ",")) }
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
        append(value.assumingMemoryBound(to: UInt8.self))
    }

    /// A JSON string, escaped as `JSONEncoder` escapes (slashes left alone).
    private mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { string($0) }
    }

    private mutating func string(_ utf8: UnsafeBufferPointer<UInt8>) {
        separate()
        append(UInt8(ascii: "\""))
        var start = 0
        var index = 0
        while index < utf8.count {
            // Eight bytes at a time while none of them needs escaping.
            while index + 8 <= utf8.count, !Self.needsEscape(UnsafeRawPointer(utf8.baseAddress! + index)
                .loadUnaligned(as: UInt64.self))
            {
                index += 8
            }
            guard index < utf8.count else { break }
            let byte = utf8[index]
            index += 1
            guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
            append(UnsafeBufferPointer(rebasing: utf8[start..<index - 1]))
            start = index
            append(UInt8(ascii: "\\"))
            switch byte {
            case 0x22: append(UInt8(ascii: "\""))
            case 0x5C: append(UInt8(ascii: "\\"))
            case 0x08: append(UInt8(ascii: "b"))
            case 0x0C: append(UInt8(ascii: "f"))
            case 0x0A: append(UInt8(ascii: "n"))
            case 0x0D: append(UInt8(ascii: "r"))
            case 0x09: append(UInt8(ascii: "t"))
            default:
                append("u00")
                append(Self.hex[Int(byte >> 4)])
                append(Self.hex[Int(byte & 0xF)])
            }
        }
        append(UnsafeBufferPointer(rebasing: utf8[start...]))
        append(UInt8(ascii: "\""))
    }

    /// Whether any of the eight bytes of `word` is below 0x20, a quote or a backslash: the
    /// classic word-at-a-time tests for a byte below n and a zero byte (a borrow can only start at
    /// a byte that matches, so "any" is exact).
    @inline(__always)
    private static func needsEscape(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let high: UInt64 = 0x8080_8080_8080_8080
        let control = (word &- ones &* 0x20) & ~word & high
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        return (control | ((quote &- ones) & ~quote & high) | ((backslash &- ones) & ~backslash & high)) != 0
    }

    /// `2026-12-02T16:12:02.123Z`: UTC, milliseconds truncated, as `ISO8601FormatStyle` writes.
    private mutating func date(_ date: Date) {
        // From the reference date, as Foundation counts: 1970-based seconds have fewer fraction bits.
        let millis = Int64((date.timeIntervalSinceReferenceDate * 1000).rounded(.down)) + 978_307_200_000
        let (days, dayMillis) = millis.quotientAndRemainder(dividingBy: 86_400_000)
        let (day, ms) = dayMillis < 0 ? (days - 1, dayMillis + 86_400_000) : (days, dayMillis)
        let (year, month, dayOfMonth) = Self.civil(fromDays: day)
        separate()
        append(UInt8(ascii: "\""))
        digits(Int(year), 4)
        append(UInt8(ascii: "-"))
        digits(month, 2)
        append(UInt8(ascii: "-"))
        digits(dayOfMonth, 2)
        append(UInt8(ascii: "T"))
        let seconds = Int(ms / 1000)
        digits(seconds / 3600, 2)
        append(UInt8(ascii: ":"))
        digits(seconds / 60 % 60, 2)
        append(UInt8(ascii: ":"))
        digits(seconds % 60, 2)
        append(UInt8(ascii: "."))
        digits(Int(ms % 1000), 3)
        append("Z\"")
    }

    private mutating func digits(_ value: Int, _ width: Int) {
        var divisor = 1
        for _ in 1..<width { divisor *= 10 }
        var value = value
        while divisor > 0 {
            append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
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
