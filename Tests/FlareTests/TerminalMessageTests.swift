import FlareContracts
import Foundation
import Testing

/// The terminal's text frames: each message in its wire form and back; anything else is refused.
@Suite struct TerminalMessageTests {
    @Test func everyMessageHasItsWireForm() async throws {
        let cases: [(TerminalMessage, String)] = [
            (.resize(cols: 120, rows: 40), #"{"cols":120,"rows":40,"type":"resize"}"#),
            (.input("ls\r"), #"{"data":"ls\r","type":"input"}"#),
            (.ready(terminal: "trm_1", resumed: false), #"{"resumed":false,"terminal":"trm_1","type":"ready"}"#),
            (.exit(status: 7), #"{"status":7,"type":"exit"}"#),
            (.exit(status: nil), #"{"type":"exit"}"#),
        ]
        for (message, wire) in cases {
            #expect(message.json == wire)
            #expect(try JSONDecoder().decode(TerminalMessage.self, from: Data(wire.utf8)) == message)
        }
    }

    @Test func unknownOrIncompleteMessagesAreRefused() async {
        for text in [#"{"type":"resize","cols":1}"#, #"{"type":"shutdown"}"#, #"{"cols":1,"rows":1}"#,
                     #"{"type":"input","data":5}"#, "[]"] {
            #expect(throws: (any Error).self, "\(text)") {
                try JSONDecoder().decode(TerminalMessage.self, from: Data(text.utf8))
            }
        }
    }
}
