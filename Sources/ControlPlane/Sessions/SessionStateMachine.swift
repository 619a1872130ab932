import FlareContracts

/// The session lifecycle of DESIGN.md as a pure function: a state and a command in, the next
/// state (or a refusal) out. No I/O here. It is the only way a session's state changes:
/// ``Store/transition(sessionId:_:reason:at:update:)`` applies it inside the write transaction,
/// and ``SessionLifecycle`` does the work each answer implies.
struct SessionStateMachine {
    enum Command: String, Equatable, CaseIterable, CustomStringConvertible {
        /// A user, a connection or the API asks for the session to run.
        case start
        /// The agent reported ready.
        case agentReady
        /// The agent (or the runtime launching it) failed, or exited unasked.
        case agentFailed
        /// The agent did not report ready in time.
        case readyTimedOut
        /// A user or the idle reconciler asks for the session to sleep.
        case stop
        /// The agent of a stopping session has ended.
        case stopped
        /// The control plane restarted and the session's agent is gone.
        case agentLost
        case delete

        var description: String { rawValue }
    }

    enum Outcome: Equatable {
        /// Move to this state.
        case moveTo(SessionState)
        /// Already where the command leads, or the command no longer applies; nothing to do.
        case unchanged
        /// Not allowed from this state; the message says why.
        case refused(String)
    }

    static func apply(_ command: Command, to state: SessionState) -> Outcome {
        switch (state, command) {
        case (.deleted, _):
            return .refused("the session was deleted")
        case (_, .delete):
            return .moveTo(.deleted)

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
        case (.starting, .readyTimedOut):
            return .moveTo(.failed)
        case (_, .readyTimedOut):
            // Ready came first, or the session was stopped or failed meanwhile.
            return .unchanged

        case (.starting, .stop), (.running, .stop):
            return .moveTo(.stopping)
        case (.created, .stop), (.sleeping, .stop), (.failed, .stop), (.stopping, .stop):
            return .unchanged
        case (.stopping, .stopped):
            return .moveTo(.sleeping)

        case (.starting, .agentLost), (.running, .agentLost):
            return .moveTo(.failed)
        case (.stopping, .agentLost):
            // The stop was under way; it is complete now the agent is gone.
            return .moveTo(.sleeping)
        case (_, .agentLost):
            return .unchanged

        case (_, .agentReady), (_, .agentFailed):
            return .refused("no agent runs for a session that is \(state.rawValue)")
        case (_, .stopped):
            return .refused("cannot finish stopping a session that is \(state.rawValue)")
        }
    }
}

/// What applying a command to a stored session did.
enum SessionTransition: Sendable {
    /// The machine moved it `from` a state to the record's new one.
    case moved(SessionRecord, from: SessionState)
    /// Nothing to do; the record as it is.
    case unchanged(SessionRecord)
    /// Not allowed from the record's state; the message says why.
    case refused(String, SessionRecord)

    var session: SessionRecord {
        switch self {
        case .moved(let session, _), .unchanged(let session), .refused(_, let session): session
        }
    }
}
