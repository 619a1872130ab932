import Foundation

/// The JSON coding every BurstFlare process uses on the wire: ISO-8601 dates with milliseconds
/// (activity times are compared with each other), sorted keys. Dates without fractions decode too.
public enum FlareJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
        }
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            if let date = (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
                ?? (try? Date(text, strategy: Date.ISO8601FormatStyle()))
            {
                return date
            }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an ISO-8601 date: \(text)"))
        }
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
