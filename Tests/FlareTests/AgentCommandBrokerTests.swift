@testable import ControlPlane
import FlareContracts
import Foundation
import Testing

@Suite struct AgentCommandBrokerTests {
    typealias Machine = AgentCommandStateMachine

    @Test func everyTransitionAndRefusal() async {
        let expected: [Machine.State: [Machine.Event: Machine.Outcome]] = [
            .pending: [.deliver: .moveTo(.delivered), .answer: .refused, .timeout: .moveTo(.timedOut)],
            .delivered: [.deliver: .refused, .answer: .moveTo(.done), .timeout: .moveTo(.timedOut)],
            .done: [.deliver: .refused, .answer: .refused, .timeout: .refused],
            .timedOut: [.deliver: .refused, .answer: .refused, .timeout: .refused],
        ]
        for state in Machine.State.allCases {
            for event in Machine.Event.allCases {
                #expect(Machine.apply(event, to: state) == expected[state]?[event], "\(event) on \(state)")
            }
        }
    }

    static func command(_ kind: AgentCommand.Kind = .snapshot) -> AgentCommand {
        AgentCommand(id: FlareID.make("cmd"), kind: kind)
    }

    /// The bug this machine closes: an agent polling after the API gave up must not get the command.
    @Test func aCommandNobodyTookInTimeIsNeverDelivered() async {
        let broker = AgentCommandBroker()
        let result = await broker.run(Self.command(.restore), sessionId: "ses_a", timeout: .milliseconds(50))
        #expect(!result.succeeded)
        #expect(result.message.contains("withdrawn"))
        #expect(await broker.next(sessionId: "ses_a", timeout: .milliseconds(100)) == nil)
    }

    @Test func aDeliveredCommandIsAnsweredOnceByItsOwnSession() async throws {
        let broker = AgentCommandBroker()
        let command = Self.command()
        async let result = broker.run(command, sessionId: "ses_a", timeout: .seconds(10))
        let taken = await broker.next(sessionId: "ses_a", timeout: .seconds(5))
        #expect(taken == command)
        #expect(await broker.state(of: command.id) == .delivered)
        #expect(await broker.next(sessionId: "ses_b", timeout: .milliseconds(50)) == nil, "another session's poll")
        #expect(await !broker.finish(command.id, sessionId: "ses_b", AgentCommandResult(succeeded: true, message: "b")))
        #expect(await broker.finish(command.id, sessionId: "ses_a", AgentCommandResult(succeeded: true, message: "ok")))
        #expect(await !broker.finish(command.id, sessionId: "ses_a", AgentCommandResult(succeeded: false, message: "again")))
        #expect(await result == AgentCommandResult(succeeded: true, message: "ok"))
        #expect(await broker.state(of: command.id) == nil)
    }

    @Test func aWaitingPollGetsTheCommandAtOnceAndAQueuedOneCannotBeAnsweredEarly() async throws {
        let broker = AgentCommandBroker()
        async let polled = broker.next(sessionId: "ses_a", timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(50))
        let first = Self.command(), second = Self.command()
        async let firstResult = broker.run(first, sessionId: "ses_a", timeout: .seconds(10))
        #expect(await polled == first)
        async let secondResult = broker.run(second, sessionId: "ses_a", timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(50))
        #expect(await broker.state(of: second.id) == .pending)
        #expect(await !broker.finish(second.id, sessionId: "ses_a", AgentCommandResult(succeeded: true, message: "guess")),
                "not delivered yet")
        #expect(await broker.next(sessionId: "ses_a", timeout: .seconds(5)) == second)
        #expect(await broker.finish(first.id, sessionId: "ses_a", AgentCommandResult(succeeded: true, message: "1")))
        #expect(await broker.finish(second.id, sessionId: "ses_a", AgentCommandResult(succeeded: true, message: "2")))
        #expect(await firstResult.message == "1")
        #expect(await secondResult.message == "2")
    }

    @Test func aDeliveredCommandThatTimesOutRefusesItsLateAnswer() async {
        let broker = AgentCommandBroker()
        let command = Self.command()
        async let result = broker.run(command, sessionId: "ses_a", timeout: .milliseconds(200))
        #expect(await broker.next(sessionId: "ses_a", timeout: .seconds(5)) == command)
        let failed = await result
        #expect(!failed.succeeded && failed.message.contains("did not answer"))
        #expect(await !broker.finish(command.id, sessionId: "ses_a", AgentCommandResult(succeeded: true, message: "late")))
    }
}
