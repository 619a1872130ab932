@testable import ControlPlane
import FlareContracts
import Testing

@Suite struct SessionStateMachineTests {
    typealias Machine = SessionStateMachine

    @Test func normalLifeOfASession() {
        #expect(Machine.apply(.start, to: .created) == .moveTo(.starting))
        #expect(Machine.apply(.agentReady, to: .starting) == .moveTo(.running))
        #expect(Machine.apply(.stop, to: .running) == .moveTo(.stopping))
        #expect(Machine.apply(.stopped, to: .stopping) == .moveTo(.sleeping))
        #expect(Machine.apply(.start, to: .sleeping) == .moveTo(.starting))
        #expect(Machine.apply(.delete, to: .sleeping) == .moveTo(.deleted))
    }

    @Test func repeatedRequestsChangeNothing() {
        #expect(Machine.apply(.start, to: .running) == .unchanged)
        #expect(Machine.apply(.start, to: .starting) == .unchanged)
        #expect(Machine.apply(.stop, to: .sleeping) == .unchanged)
        #expect(Machine.apply(.stop, to: .created) == .unchanged)
    }

    @Test func failuresAndRecovery() {
        #expect(Machine.apply(.agentFailed, to: .running) == .moveTo(.failed))
        #expect(Machine.apply(.agentFailed, to: .starting) == .moveTo(.failed))
        #expect(Machine.apply(.agentFailed, to: .sleeping) != .moveTo(.failed))
        #expect(Machine.apply(.start, to: .failed) == .moveTo(.starting))
    }

    @Test func deletedSessionsRefuseEverything() {
        for command: Machine.Command in [.start, .stop, .delete, .agentReady] {
            guard case .refused = Machine.apply(command, to: .deleted) else {
                Issue.record("\(command) on a deleted session was not refused")
                continue
            }
        }
        guard case .refused = Machine.apply(.start, to: .stopping) else {
            Issue.record("start while stopping was not refused")
            return
        }
    }
}
