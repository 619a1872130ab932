import FlareContracts

/// The session lifecycle of DESIGN.md as a pure function: a state and a command in, the next
/// state (or a refusal) out. No I/O here; ``SessionLifecycle`` does the work each answer implies.
struct SessionStateMachine {
    enum Command: Equatable {
        case start
        case agentReady
        case agentFailed
        case stop
        case stopped
        case delete
    }

    enum Outcome: Equatable {
        /// Move to this state.
        case moveTo(SessionState)
        /// Already where the command leads; nothing to do.
        case unchanged
        /// Not allowed from this state; the message says why.
        case refused(String)
    }

    static func apply(_ command: Command, to state: SessionState) -> Outcome {
        switch (state, command) {
        case (.deleted, _):
            return .refused("the session was deleted")
        case (.created, .start), (.sleeping, .start), (.failed, .start):
            return .moveTo(.starting)
        case (.starting, .start), (.running, .start):
            return .unchanged
        case (.stopping, .start):
            return .refused("the session is stopping; start it again once it is sleeping")
        case (.starting, .agentReady):
            return .moveTo(.running)
        case (.running, .agentReady):
            return .unchanged
        case (.starting, .agentFailed), (.running, .agentFailed), (.stopping, .agentFailed):
            return .moveTo(.failed)
        case (.starting, .stop), (.running, .stop):
            return .moveTo(.stopping)
        case (.created, .stop), (.sleeping, .stop), (.failed, .stop), (.stopping, .stop):
            return .unchanged
        case (.stopping, .stopped):
            return .moveTo(.sleeping)
        case (_, .delete):
            return .moveTo(.deleted)
        default:
            return .refused("cannot \(command) a session that is \(state.rawValue)")
        }
    }
}
