/// One agent command's life as a pure function: queued (`pending`), handed to the agent's long
/// poll (`delivered`), answered (`done`) or given up on (`timedOut`). No I/O here;
/// ``AgentCommandBroker`` does what each answer implies. A timed-out command is never delivered
/// afterwards, and only a delivered command can be answered: the agent cannot run what the API
/// already reported as failed, nor answer for a command it was never given.
struct AgentCommandStateMachine {
    enum State: Equatable, CaseIterable {
        case pending, delivered, done, timedOut
    }

    enum Event: Equatable, CaseIterable {
        /// The agent's poll takes the command.
        case deliver
        /// The agent reports the command's result.
        case answer
        /// The caller's wait ran out.
        case timeout
    }

    enum Outcome: Equatable {
        case moveTo(State)
        case refused
    }

    static func apply(_ event: Event, to state: State) -> Outcome {
        switch (state, event) {
        case (.pending, .deliver): .moveTo(.delivered)
        case (.delivered, .answer): .moveTo(.done)
        case (.pending, .timeout), (.delivered, .timeout): .moveTo(.timedOut)
        case (.pending, .answer), (.delivered, .deliver), (.done, _), (.timedOut, _): .refused
        }
    }
}
