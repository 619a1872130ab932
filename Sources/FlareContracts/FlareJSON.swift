import Foundation

/// The JSON coding every BurstFlare process uses on the wire: ISO-8601 dates, sorted keys.
public enum FlareJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

/// Prefixed random identifiers: `ses_3f9c…`.
public enum FlareID {
    /// A new identifier with `prefix` and 16 random hex characters.
    public static func make(_ prefix: String) -> String {
        var rng = SystemRandomNumberGenerator()
        let value = rng.next() as UInt64
        return prefix + "_" + String(format: "%016llx", value)
    }
}
