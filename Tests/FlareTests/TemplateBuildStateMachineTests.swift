@testable import ControlPlane
import FlareContracts
import Foundation
import Testing

@Suite struct TemplateBuildStateMachineTests {
    typealias Machine = TemplateBuildStateMachine

    /// Every build state against every event: the state it moves to, or nil for a refusal.
    static let table: [TemplateBuildState: [Machine.Event: TemplateBuildState]] = [
        .notNeeded: [:],
        .awaitingBundle: [.bundleStored: .queued],
        .queued: [.claim: .building],
        .building: [.succeed: .succeeded, .attemptFailed: .queued, .gaveUp: .deadLettered, .interrupted: .queued],
        .succeeded: [:],
        .deadLettered: [:],
    ]

    @Test func everyTransitionAndRefusal() async {
        #expect(Set(Self.table.keys) == Set(TemplateBuildState.allCases))
        for state in TemplateBuildState.allCases {
            for event in Machine.Event.allCases {
                let outcome = Machine.apply(event, to: state)
                if let next = Self.table[state]?[event] {
                    #expect(outcome == .moveTo(next), "\(event) on \(state)")
                } else if case .moveTo(let next) = outcome {
                    Issue.record("\(event) on \(state) moved to \(next); it should be refused")
                }
            }
        }
    }

    /// Through the store: a refused event writes nothing, nothing else changes the state, and a
    /// stored state this version does not know fails loudly instead of reading as some other state.
    @Test func theStoreChangesBuildsOnlyThroughTheMachine() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store(path: directory.url.appendingPathComponent("flare.sqlite").path)
        try await store.insertUser(UserRecord(id: "usr_1", email: "a@b.co", passwordHash: "x", createdAt: Date()))
        try await store.insertTemplate(TemplateRecord(id: "tpl_1", ownerId: "usr_1", name: "base", description: "",
                                                      activeVersionId: nil, createdAt: Date()))
        var version = TemplateVersionRecord(id: "tv_1", templateId: "tpl_1", version: "1", manifestJson: "{\"image\":\"x\"}",
                                            createdAt: Date(), promotedAt: nil)
        version.buildState = .awaitingBundle
        try await store.insertTemplateVersion(version)

        guard case .refused = try await store.buildTransition(versionId: "tv_1", .claim) else {
            Issue.record("a build waiting for its bundle was claimed")
            return
        }
        #expect(try await store.templateVersion(id: "tv_1")?.buildState == .awaitingBundle)
        await #expect(throws: StoreError.stateChangeOutsideMachine) {
            try await store.updateTemplateVersion(id: "tv_1") { $0.buildState = .succeeded }
        }
        for event: Machine.Event in [.bundleStored, .claim, .attemptFailed, .claim] {
            guard case .moved = try await store.buildTransition(versionId: "tv_1", event, update: { $0.buildAttempts += 1 })
            else {
                Issue.record("\(event) was refused")
                return
            }
        }
        try await store.requeueInterruptedBuilds()
        #expect(try await store.templateVersion(id: "tv_1")?.buildState == .queued)
        #expect(try await store.buildTransition(versionId: "tv_nope", .claim) == nil)

        try await store.database.write { try $0.execute(sql: "UPDATE template_versions SET build_state = 'exploded'") }
        await #expect(throws: (any Error).self) { try await store.templateVersion(id: "tv_1") }
    }
}
