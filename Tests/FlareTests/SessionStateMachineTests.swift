@testable import ControlPlane
import FlareContracts
import Testing

@Suite struct SessionStateMachineTests {
    typealias Machine = SessionStateMachine

    /// Every state against every command. `=` is unchanged, `x` refused, a state name a move.
    static let table: [SessionState: [Machine.Command: String]] = [
        //           start        agentReady  agentFailed  readyTimedOut  stop         stopped      agentLost    delete
        .created: row("starting", "x",        "x",         "=",           "=",         "x",         "=",         "deleted"),
        .starting: row("=",       "running",  "failed",    "failed",      "stopping",  "x",         "failed",    "deleted"),
        .running: row("=",        "=",        "failed",    "=",           "stopping",  "x",         "failed",    "deleted"),
        .stopping: row("x",       "x",        "failed",    "=",           "=",         "sleeping",  "sleeping",  "deleted"),
        .sleeping: row("starting", "x",       "x",         "=",           "=",         "x",         "=",         "deleted"),
        .failed: row("starting",  "x",        "x",         "=",           "=",         "x",         "=",         "deleted"),
        .deleted: row("x",        "x",        "x",         "x",           "x",         "x",         "x",         "x"),
    ]

    static func row(_ cells: String...) -> [Machine.Command: String] {
        let commands: [Machine.Command] = [.start, .agentReady, .agentFailed, .readyTimedOut, .stop, .stopped,
                                           .agentLost, .delete]
        return Dictionary(uniqueKeysWithValues: zip(commands, cells))
    }

    @Test func everyTransitionAndRefusal() async {
        #expect(Set(Self.table.keys) == Set(SessionState.allCases))
        for state in SessionState.allCases {
            #expect(Set(Self.table[state]!.keys) == Set(Machine.Command.allCases), "\(state) covers every command")
            for command in Machine.Command.allCases {
                let expected = Self.table[state]![command]!
                let outcome = Machine.apply(command, to: state)
                switch (expected, outcome) {
                case ("=", .unchanged), ("x", .refused):
                    break
                case (let name, .moveTo(let next)) where next.rawValue == name:
                    break
                default:
                    Issue.record("\(command) on \(state): expected \(expected), got \(outcome)")
                }
            }
        }
    }

    @Test func refusalsSayWhy() async {
        #expect(Machine.apply(.start, to: .stopping)
            == .refused("the session is stopping; start it again once it is sleeping"))
        #expect(Machine.apply(.stop, to: .deleted) == .refused("the session was deleted"))
        #expect(Machine.apply(.agentReady, to: .sleeping) == .refused("no agent runs for a session that is sleeping"))
    }

    @Test func normalLifeOfASession() async {
        var state = SessionState.created
        for command: Machine.Command in [.start, .agentReady, .stop, .stopped, .start, .agentReady, .agentFailed,
                                         .start, .readyTimedOut, .delete] {
            guard case .moveTo(let next) = Machine.apply(command, to: state) else {
                Issue.record("\(command) did not move a \(state) session")
                return
            }
            state = next
        }
        #expect(state == .deleted)
    }
}
