import FlareContracts
import Foundation

/// Hands commands to running agents (which long-poll for them) and their results back to the
/// API request waiting for them. Each command moves through ``AgentCommandStateMachine``.
actor AgentCommandBroker {
    private struct Entry {
        let command: AgentCommand
        let sessionId: String
        var state: AgentCommandStateMachine.State
        /// The request waiting for the result.
        let waiter: CheckedContinuation<AgentCommandResult, Never>
    }

    private var entries: [String: Entry] = [:]
    /// Per session, the ids of its pending commands in the order they were sent.
    private var queued: [String: [String]] = [:]
    private var pollers: [String: CheckedContinuation<AgentCommand?, Never>] = [:]
    private var closed = false

    /// Queues `command` for the session's agent and waits for its result, or for `timeout`: a
    /// command still queued then is withdrawn, and one the agent took is no longer waited for
    /// (its late answer is refused).
    func run(_ command: AgentCommand, sessionId: String, timeout: Duration) async -> AgentCommandResult {
        let id = command.id
        Task {
            try? await Task.sleep(for: timeout)
            self.expire(id, after: timeout)
        }
        // Registered before anything can answer it: nothing suspends between here and the entry.
        return await withCheckedContinuation { waiter in
            entries[id] = Entry(command: command, sessionId: sessionId, state: .pending, waiter: waiter)
            if let poller = pollers.removeValue(forKey: sessionId) {
                deliver(id)
                poller.resume(returning: command)
            } else {
                queued[sessionId, default: []].append(id)
            }
        }
    }

    /// The next command for the session's agent, waiting up to `timeout` for one.
    func next(sessionId: String, timeout: Duration) async -> AgentCommand? {
        guard !closed else { return nil }
        while var pending = queued[sessionId], !pending.isEmpty {
            let id = pending.removeFirst()
            queued[sessionId] = pending.isEmpty ? nil : pending
            if let command = deliver(id) { return command }
        }
        pollers.removeValue(forKey: sessionId)?.resume(returning: nil)
        Task {
            try? await Task.sleep(for: timeout)
            self.expirePoll(sessionId)
        }
        return await withCheckedContinuation { pollers[sessionId] = $0 }
    }

    /// The answer of `sessionId`'s agent to command `id`. Only the first answer to a command that
    /// was delivered to that session's agent counts; false for anything else.
    @discardableResult
    func finish(_ id: String, sessionId: String, _ result: AgentCommandResult) -> Bool {
        guard let entry = entries[id], entry.sessionId == sessionId,
              case .moveTo = AgentCommandStateMachine.apply(.answer, to: entry.state)
        else { return false }
        entries[id] = nil
        entry.waiter.resume(returning: result)
        return true
    }

    /// Where command `id` is while its caller waits; nil once it is answered or timed out.
    func state(of id: String) -> AgentCommandStateMachine.State? {
        entries[id]?.state
    }

    /// The server is stopping: end every long poll now (a server drains open requests before it exits).
    func close() {
        closed = true
        for poller in pollers.values { poller.resume(returning: nil) }
        pollers.removeAll()
    }

    /// Moves a pending command to delivered; nil when it is not pending (it timed out).
    @discardableResult
    private func deliver(_ id: String) -> AgentCommand? {
        guard var entry = entries[id], case .moveTo(let next) = AgentCommandStateMachine.apply(.deliver, to: entry.state)
        else { return nil }
        entry.state = next
        entries[id] = entry
        return entry.command
    }

    /// The caller's wait ran out: it gets a failure that says how far the command got.
    private func expire(_ id: String, after timeout: Duration) {
        guard let entry = entries[id], case .moveTo = AgentCommandStateMachine.apply(.timeout, to: entry.state)
        else { return }
        entries[id] = nil
        queued[entry.sessionId]?.removeAll { $0 == id }
        let message = entry.state == .pending
            ? "the agent did not take the command within \(timeout); it was withdrawn"
            : "the agent did not answer within \(timeout)"
        entry.waiter.resume(returning: AgentCommandResult(succeeded: false, message: message))
    }

    private func expirePoll(_ sessionId: String) {
        pollers.removeValue(forKey: sessionId)?.resume(returning: nil)
    }
}
