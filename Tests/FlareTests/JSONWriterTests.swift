import FlareContracts
import Foundation
import Testing

/// The hand-written JSON of the list routes must be byte for byte what `JSONEncoder` gives, so
/// clients cannot tell which one answered.
@Suite struct JSONWriterTests {
    func encoded(_ value: some Encodable) throws -> String {
        String(decoding: try FlareJSON.encoder().encode(value), as: UTF8.self)
    }

    func written(_ value: some JSONWritable) -> String {
        String(decoding: JSONWriter.encode(value), as: UTF8.self)
    }

    func session(name: String = "dev", reason: String = "created", at date: Date,
                 activity: AgentHeartbeat? = nil, heartbeat: Date? = nil) -> SessionInfo {
        SessionInfo(id: "ses_0123456789abcdef", name: name, templateId: "tpl_1", templateName: "node",
                    templateVersion: "1.2", state: .running, stateReason: reason,
                    hostPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI/+x=", lastHeartbeatAt: heartbeat,
                    activity: activity, createdAt: date, updatedAt: date.addingTimeInterval(0.5))
    }

    @Test func stringsAreEscapedAsTheEncoderDoes() async throws {
        let controls = String(decoding: (0..<0x20).map { UInt8($0) }, as: UTF8.self)
        for text in ["", "plain", "quote \" back \\ slash / end", controls, "é 日本 🚀 \u{7F} \u{2028}", "\"\\\"\\"] {
            let value = session(name: text, reason: text + "!", at: Date(timeIntervalSince1970: 1_700_000_000))
            #expect(written(value) == (try encoded(value)), "\(text.debugDescription)")
        }
    }

    /// The writer scans 8 bytes a step: an escape at every position of long strings, alone and in runs.
    @Test func escapesAreFoundAtEveryPositionOfALongString() async throws {
        for length in [7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 70] {
            for position in 0..<length {
                for escaped in ["\"", "\\", "\n", "\u{01}", "\u{1F}", " ", "!", "#", "[", "]", "\"\"", "é", "\u{7F}"] {
                    var text = String(repeating: "x", count: length)
                    let at = text.index(text.startIndex, offsetBy: position)
                    text.replaceSubrange(at...at, with: escaped)
                    let value = session(name: text, reason: text + text, at: Date(timeIntervalSince1970: 1_700_000_000))
                    #expect(written(value) == (try encoded(value)), "\(text.debugDescription)")
                }
            }
        }
    }

    @Test func datesMatchTheEncoderToTheMillisecond() async throws {
        var generator = SystemRandomNumberGenerator()
        var dates = [0, -1, -0.0005, 0.0005, 0.9999, 951_782_400, 951_868_799.999, 4_102_444_800, -2_208_988_800,
                     1_700_000_000.123, 1_700_000_000.1239, 1_800_000_000.5]
            .map { Date(timeIntervalSince1970: $0) }
        // Random instants 0.4 ms into a millisecond. Exactly on a millisecond (as dates read back
        // from the store are) Foundation may write one less (it truncates the fraction after
        // subtracting the whole seconds: .334 read as .33399… becomes .333); the writer keeps the
        // stored millisecond, which is what the list route writes from the stored text too
        // (`APIRoutesTests.listedSessionsAreWhatTheirOwnRouteShows`).
        for _ in 0..<20_000 {
            let millis = Int64.random(in: -3_000_000_000_000...6_000_000_000_000, using: &generator)
            dates.append(Date(timeIntervalSince1970: Double(millis) / 1000 + 0.0004))
        }
        for date in dates {
            let value = session(at: date)
            #expect(written(value) == (try encoded(value)), "\(date.timeIntervalSince1970)")
        }
    }

    @Test func missingFieldsAreLeftOutAndNestedValuesWritten() async throws {
        let now = Date(timeIntervalSince1970: 1_764_700_000.25)
        let values = [
            session(at: now),
            session(at: now, activity: AgentHeartbeat(), heartbeat: now),
            session(at: now, activity: AgentHeartbeat(openConnections: 2, openChannels: 3, bytesIn: .max,
                                                      bytesOut: 7, lastInputAt: now, lastConnectionAt: now),
                    heartbeat: now),
        ]
        for value in values {
            #expect(written(value) == (try encoded(value)))
        }
        for list in [[], [values[0]], values] {
            var writer = JSONWriter()
            writer.array { json in list.forEach { $0.write(to: &json) } }
            #expect(String(decoding: writer.bytes, as: UTF8.self) == (try encoded(list)))
            #expect(try FlareJSON.decoder().decode([SessionInfo].self, from: Data(writer.bytes)) == list)
        }
    }

    /// A writer that starts small grows as it writes: a long list comes out whole and as the encoder writes it.
    @Test func aWriterGrowsPastItsFirstCapacity() async throws {
        let now = Date(timeIntervalSince1970: 1_764_700_000.25)
        let list = (0..<500).map { session(name: "s\($0)-" + String(repeating: "\"", count: $0 % 40), at: now) }
        var writer = JSONWriter(capacity: 1)
        writer.array { json in list.forEach { $0.write(to: &json) } }
        #expect(writer.bytes.count > 100_000)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == (try encoded(list)))
    }
}
