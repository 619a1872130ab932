import FlareContracts
import Foundation

/// Hands commands to running agents (which long-poll for them) and their results back to the
/// API request waiting for them.
actor AgentCommandBroker {
    private var queued: [String: [AgentCommand]] = [:]
    private var pollers: [String: CheckedContinuation<AgentCommand?, Never>] = [:]
    /// Per command id: the session it was sent to, and the request waiting for its result.
    private var waiters: [String: (sessionId: String, continuation: CheckedContinuation<AgentCommandResult, Never>)] = [:]
    private var closed = false

    /// Queues `command` for the session's agent and waits for its result (or `timeout`).
    func run(_ command: AgentCommand, sessionId: String, timeout: Duration) async -> AgentCommandResult {
        if let poller = pollers.removeValue(forKey: sessionId) {
            poller.resume(returning: command)
        } else {
            queued[sessionId, default: []].append(command)
        }
        let id = command.id
        Task {
            try? await Task.sleep(for: timeout)
            self.expire(id, sessionId: sessionId,
                        AgentCommandResult(succeeded: false, message: "the agent did not answer in \(timeout)"))
        }
        // Registered before any answer can arrive: nothing suspends between queueing and here.
        return await withCheckedContinuation { waiters[id] = (sessionId, $0) }
    }

    /// The next command for the session's agent, waiting up to `timeout` for one.
    func next(sessionId: String, timeout: Duration) async -> AgentCommand? {
        guard !closed else { return nil }
        if var pending = queued[sessionId], !pending.isEmpty {
            let command = pending.removeFirst()
            queued[sessionId] = pending
            return command
        }
        pollers.removeValue(forKey: sessionId)?.resume(returning: nil)
        Task {
            try? await Task.sleep(for: timeout)
            self.expirePoll(sessionId)
        }
        return await withCheckedContinuation { pollers[sessionId] = $0 }
    }

    /// The answer of `sessionId`'s agent to command `id`; only the first one counts, and only
    /// from the agent the command was sent to. False when there is no such pending command.
    @discardableResult
    func finish(_ id: String, sessionId: String, _ result: AgentCommandResult) -> Bool {
        guard waiters[id]?.sessionId == sessionId, let waiter = waiters.removeValue(forKey: id) else { return false }
        waiter.continuation.resume(returning: result)
        return true
    }

    /// A command nobody answered in time: its caller gets `result`, and an agent that has not
    /// picked it up yet never will (the API already reported it as failed).
    private func expire(_ id: String, sessionId: String, _ result: AgentCommandResult) {
        queued[sessionId]?.removeAll { $0.id == id }
        finish(id, sessionId: sessionId, result)
    }

    /// The server is stopping: end every long poll now (a server drains open requests before it exits).
    func close() {
        closed = true
        for poller in pollers.values { poller.resume(returning: nil) }
        pollers.removeAll()
    }

    private func expirePoll(_ sessionId: String) {
        pollers.removeValue(forKey: sessionId)?.resume(returning: nil)
    }
}
