@testable import ControlPlane
import Crypto
import FlareContracts
import Foundation
import Hummingbird
import Logging
import Testing

/// The services over an in-memory store and a fake runtime: the lifecycle as a user drives it,
/// and another account's reach, in milliseconds and without processes.
@Suite struct SessionServiceTests {
    let store: Store
    let driver = FakeRuntimeDriver()
    let lifecycle: SessionLifecycle
    let sessions: SessionService
    let templates: TemplateService
    let alice: Caller
    let mallory: Caller

    init() async throws {
        store = try Store.inMemory()
        let channels = AgentChannels(directory: FileManager.default.temporaryDirectory
            .appendingPathComponent("flt-channels-\(UUID().uuidString)"), logger: Logger(label: "test"),
            makeRouter: { _ in Router(context: FlareRequestContext.self) })
        lifecycle = SessionLifecycle(store: store, driver: driver, channels: channels, stopGrace: .zero,
                                     logger: Logger(label: "test"))
        sessions = SessionService(store: store, lifecycle: lifecycle, revocations: RevocationHub(revokeLocally: { _ in 0 }),
                                  signingKey: Curve25519.Signing.PrivateKey(), runtimeTokenLifetime: 300)
        templates = TemplateService(store: store, builds: nil, resourceCeilings: TemplateResources())
        var callers: [Caller] = []
        for email in ["alice@example.com", "mallory@example.com"] {
            let user = UserRecord(id: FlareID.make("usr"), email: email, passwordHash: "-", createdAt: Date())
            try await store.insertUser(user)
            callers.append(Caller(user))
        }
        (alice, mallory) = (callers[0], callers[1])
        _ = try await templates.create(alice, TemplateCreateRequest(name: "base"))
        let manifest = JSONValue.object(["version": .string("1"), "manifest": .object(["image": .string("debian:bookworm")])])
        _ = try await templates.createVersion(alice, "base", manifest)
        _ = try await templates.promote(alice, "base", version: "1")
    }

    @Test func aSessionStartsRunsAndSleepsThroughTheRuntime() async throws {
        let created = try await sessions.create(alice, SessionCreateRequest(name: "dev", template: "base"))
        #expect(created.state == .created && created.templateName == "base" && created.templateVersion == "1")
        let starting = try await sessions.start(alice, "dev")
        #expect(starting.state == .starting)
        #expect(driver.calls == [.start(created.id)])
        #expect(driver.agentToken(of: created.id) != nil)
        try await lifecycle.agentReady(created.id)
        #expect(try await sessions.get(alice, "dev").state == .running)
        let stopped = try await sessions.stop(alice, "dev")
        #expect(stopped.state == .sleeping)
        #expect(driver.calls == [.start(created.id), .stop(created.id), .remove(created.id)])
        let reasons = try await sessions.events(alice, "dev", limit: 100, after: nil).items.map(\.reason)
        #expect(reasons.contains("start requested by alice@example.com"))
        #expect(reasons.contains("stop requested by alice@example.com"))
    }

    @Test func aRuntimeThatCannotStartTheAgentFailsTheSessionWithItsReason() async throws {
        _ = try await sessions.create(alice, SessionCreateRequest(name: "dev", template: "base"))
        driver.failStarts = "no room for another agent"
        let failed = try await sessions.start(alice, "dev")
        #expect(failed.state == .failed)
        #expect(failed.stateReason.contains("no room for another agent"))
    }

    /// Every session call of another account is a 404 and changes nothing.
    @Test func anotherAccountFindsNothing() async throws {
        let created = try await sessions.create(alice, SessionCreateRequest(name: "dev", template: "base"))
        let notFound = ServiceError.notFound("session \(created.id)")
        await #expect(throws: notFound) { try await sessions.get(mallory, created.id) }
        await #expect(throws: notFound) { try await sessions.start(mallory, created.id) }
        await #expect(throws: notFound) { try await sessions.stop(mallory, created.id) }
        await #expect(throws: notFound) { try await sessions.delete(mallory, created.id) }
        await #expect(throws: notFound) { try await sessions.logs(mallory, created.id, lines: 10) }
        await #expect(throws: notFound) { try await sessions.issueRuntimeToken(mallory, created.id, purpose: .ssh) }
        await #expect(throws: notFound) { try await sessions.revokeRuntimeTokens(mallory, created.id) }
        await #expect(throws: ServiceError.notFound("template base")) {
            try await sessions.create(mallory, SessionCreateRequest(name: "mine", template: "base"))
        }
        await #expect(throws: ServiceError.notFound("template base")) {
            try await templates.promote(mallory, "base", version: "1")
        }
        #expect(try await sessions.list(mallory, limit: 100, after: nil).json == Array("[]".utf8))
        #expect(try await sessions.get(alice, "dev").state == .created)
        #expect(driver.calls.isEmpty)
    }
}
