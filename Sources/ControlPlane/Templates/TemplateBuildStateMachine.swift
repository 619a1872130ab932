import FlareContracts

/// A template version's image build as a pure function: a state and an event in, the next state
/// (or a refusal) out. The only way a build's state changes:
/// ``Store/buildTransition(versionId:_:update:)`` applies it inside the write transaction. A
/// version starts `not_needed` (host runtime), `awaiting_bundle` (its manifest names files) or
/// `queued`.
struct TemplateBuildStateMachine {
    enum Event: String, Equatable, CaseIterable, CustomStringConvertible {
        /// The bundle the manifest's `files` name was uploaded and checked.
        case bundleStored
        /// A builder takes the build (one attempt more).
        case claim
        case succeed
        /// An attempt failed and another one is left.
        case attemptFailed
        /// The last attempt failed: the build is given up.
        case gaveUp
        /// The server stopped while the build ran; it goes back to the queue.
        case interrupted

        var description: String { rawValue }
    }

    enum Outcome: Equatable {
        case moveTo(TemplateBuildState)
        case refused(String)
    }

    static func apply(_ event: Event, to state: TemplateBuildState) -> Outcome {
        switch (state, event) {
        case (.awaitingBundle, .bundleStored): .moveTo(.queued)
        case (.queued, .claim): .moveTo(.building)
        case (.building, .succeed): .moveTo(.succeeded)
        case (.building, .attemptFailed), (.building, .interrupted): .moveTo(.queued)
        case (.building, .gaveUp): .moveTo(.deadLettered)
        case (_, .bundleStored): .refused("the version is not waiting for a bundle (\(state.rawValue))")
        default: .refused("cannot \(event) a build that is \(state.rawValue)")
        }
    }
}
