import Crypto
import FlareContracts
import FlareHTTP
import Foundation
import Logging

/// Carries out session transitions: one at a time per session, each recorded as an event with
/// its reason, with the runtime driver doing the work the state machine asks for.
public final class SessionLifecycle: Sendable {
    let store: Store
    let driver: any RuntimeDriver
    let mutex = KeyedMutex()
    let logger: Logger
    /// Each session's own control channel, open while its agent may run.
    let channels: AgentChannels
    /// How long a starting agent has to report ready.
    let readyTimeout: Duration
    /// How long a stopping agent has before it is killed.
    let stopGrace: Duration

    init(store: Store, driver: any RuntimeDriver, channels: AgentChannels,
         readyTimeout: Duration = .seconds(60), stopGrace: Duration = .seconds(10), logger: Logger) {
        self.store = store
        self.driver = driver
        self.channels = channels
        self.readyTimeout = readyTimeout
        self.stopGrace = stopGrace
        self.logger = logger
    }

    /// Starts (or wakes) a session. Returns once the agent process exists; the session becomes
    /// `running` when the agent reports ready.
    func start(_ sessionId: String, reason: String) async throws -> SessionRecord {
        try await mutex.withLock(sessionId) {
            let session = try await self.load(sessionId)
            switch SessionStateMachine.apply(.start, to: session.state) {
            case .unchanged: return session
            case .refused(let message): throw APIError.conflict(message, code: "invalid_state")
            case .moveTo(let next):
                let token = Self.newSecret()
                guard let starting = try await self.store.transition(
                    sessionId: sessionId, from: session.state, to: next, reason: reason, at: Date(),
                    update: { $0.agentTokenHash = Self.hash(token); $0.agentPid = nil; $0.agentEndpoint = nil })
                else { throw APIError.conflict("the session changed; try again", code: "invalid_state") }
                do {
                    let version = try await self.store.templateVersion(id: session.templateVersionId)
                    try await self.channels.open(sessionId, owner: try self.driver.agentOwner(of: sessionId))
                    let handle = try await self.driver.start(AgentLaunchSpec(
                        sessionId: sessionId, controlDirectory: self.channels.channelDirectory(sessionId),
                        agentToken: token, image: version?.buildImage, resources: version?.manifest.resources))
                    try await self.store.updateSession(id: sessionId) {
                        $0.agentPid = handle.pid
                        $0.agentEndpoint = handle.endpoint
                    }
                } catch {
                    return try await self.fail(starting, reason: "the runtime could not start the agent: \(error)")
                }
                self.watchReadiness(sessionId)
                return try await self.load(sessionId)
            }
        }
    }

    /// The agent said it is ready to serve.
    func agentReady(_ sessionId: String) async throws {
        try await mutex.withLock(sessionId) {
            let session = try await self.load(sessionId)
            guard case .moveTo(let next) = SessionStateMachine.apply(.agentReady, to: session.state) else { return }
            _ = try await self.store.transition(sessionId: sessionId, from: session.state, to: next,
                                                reason: "agent ready", at: Date())
        }
    }

    /// Stops a session: the agent ends and the session sleeps.
    func stop(_ sessionId: String, reason: String) async throws -> SessionRecord {
        try await mutex.withLock(sessionId) {
            let session = try await self.load(sessionId)
            switch SessionStateMachine.apply(.stop, to: session.state) {
            case .unchanged: return session
            case .refused(let message): throw APIError.conflict(message, code: "invalid_state")
            case .moveTo(let next):
                _ = try await self.store.transition(sessionId: sessionId, from: session.state, to: next,
                                                    reason: reason, at: Date())
                await self.driver.stop(sessionId: sessionId, grace: self.stopGrace)
                await self.driver.remove(sessionId: sessionId)
                self.channels.close(sessionId)
                guard let slept = try await self.store.transition(
                    sessionId: sessionId, from: next, to: .sleeping, reason: "agent stopped", at: Date(),
                    update: Self.clearAgent)
                else { return try await self.load(sessionId) }
                return slept
            }
        }
    }

    /// Deletes a session, stopping its agent first if it runs.
    func delete(_ sessionId: String, reason: String) async throws {
        try await mutex.withLock(sessionId) {
            let session = try await self.load(sessionId)
            guard case .moveTo = SessionStateMachine.apply(.delete, to: session.state) else {
                throw APIError.notFound("session")
            }
            if [.starting, .running, .stopping].contains(session.state) {
                await self.driver.stop(sessionId: sessionId, grace: self.stopGrace)
            }
            await self.driver.remove(sessionId: sessionId)
            self.channels.close(sessionId)
            _ = try await self.store.transition(sessionId: sessionId, from: session.state, to: .deleted,
                                                reason: reason, at: Date(), update: Self.clearAgent)
        }
    }

    /// The runtime saw the agent end without being asked to.
    func agentExited(_ sessionId: String, description: String) async {
        do {
            try await mutex.withLock(sessionId) {
                let session = try await self.load(sessionId)
                guard case .moveTo = SessionStateMachine.apply(.agentFailed, to: session.state) else { return }
                _ = try await self.fail(session, reason: description)
            }
        } catch {
            logger.error("could not record agent exit", metadata: ["session.id": "\(sessionId)", "error": "\(error)"])
        }
    }

    /// After a restart: re-attach to agents still running, mark the rest failed.
    func recover() async throws {
        for session in try await store.sessions(inStates: [.starting, .running, .stopping]) {
            try await mutex.withLock(session.id) {
                if session.state != .stopping, let pid = session.agentPid, let endpoint = session.agentEndpoint,
                   (try? await self.channels.open(session.id, owner: try self.driver.agentOwner(of: session.id))) != nil,
                   await self.driver.adopt(sessionId: session.id, handle: AgentHandle(pid: pid, endpoint: endpoint))
                {
                    if session.state == .starting { self.watchReadiness(session.id) }
                    return
                }
                self.channels.close(session.id)
                if session.state == .stopping {
                    await self.driver.remove(sessionId: session.id)
                    _ = try await self.store.transition(
                        sessionId: session.id, from: .stopping, to: .sleeping,
                        reason: "stop completed after a control-plane restart", at: Date(), update: Self.clearAgent)
                } else {
                    _ = try await self.fail(session, reason: "the agent was lost while the control plane was down")
                }
            }
        }
    }

    private func watchReadiness(_ sessionId: String) {
        let timeout = readyTimeout
        Task {
            try? await Task.sleep(for: timeout)
            try? await self.mutex.withLock(sessionId) {
                let session = try await self.load(sessionId)
                guard session.state == .starting else { return }
                await self.driver.stop(sessionId: sessionId, grace: .seconds(2))
                _ = try await self.fail(session, reason: "the agent did not report ready within \(timeout)")
            }
        }
    }

    private func fail(_ session: SessionRecord, reason: String) async throws -> SessionRecord {
        logger.warning("session failed", metadata: ["session.id": "\(session.id)", "reason": "\(reason)"])
        channels.close(session.id)
        return try await store.transition(sessionId: session.id, from: session.state, to: .failed, reason: reason,
                                          at: Date(), update: Self.clearAgent) ?? session
    }

    private func load(_ sessionId: String) async throws -> SessionRecord {
        guard let session = try await store.session(id: sessionId) else { throw APIError.notFound("session") }
        return session
    }

    static let clearAgent: @Sendable (inout SessionRecord) -> Void = {
        $0.agentTokenHash = nil
        $0.agentPid = nil
        $0.agentEndpoint = nil
    }

    /// A new random secret (agent and access tokens).
    static func newSecret(prefix: String = "") -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return prefix + Base64URL.encode(bytes)
    }

    /// How secrets are stored: hex SHA-256.
    static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).hex
    }
}
