import Crypto
import FlareContracts
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
            let token = Self.newSecret()
            let starting: SessionRecord
            switch try await self.transition(sessionId, .start, reason: reason, update: {
                $0.agentTokenHash = Self.hash(token); $0.agentPid = nil; $0.agentEndpoint = nil
            }) {
            case .unchanged(let session): return session
            case .refused(let message, _): throw ServiceError.conflict(message, code: "invalid_state")
            case .moved(let session, _): starting = session
            }
            do {
                let version = try await self.store.templateVersion(id: starting.templateVersionId)
                try await self.channels.open(sessionId, owner: try self.driver.agentOwner(of: sessionId))
                let handle = try await self.driver.start(AgentLaunchSpec(
                    sessionId: sessionId, controlDirectory: self.channels.channelDirectory(sessionId),
                    agentToken: token, image: version?.buildImage, resources: version?.manifest.resources))
                try await self.store.updateSession(id: sessionId) {
                    $0.agentPid = handle.pid
                    $0.agentEndpoint = handle.endpoint
                }
            } catch {
                return try await self.fail(sessionId, .agentFailed, reason: "the runtime could not start the agent: \(error)")
            }
            self.watchReadiness(sessionId)
            return try await self.load(sessionId)
        }
    }

    /// The agent said it is ready to serve.
    func agentReady(_ sessionId: String) async throws {
        try await mutex.withLock(sessionId) {
            _ = try await self.transition(sessionId, .agentReady, reason: "agent ready")
        }
    }

    /// Stops a session: the agent ends and the session sleeps.
    func stop(_ sessionId: String, reason: String) async throws -> SessionRecord {
        try await mutex.withLock(sessionId) {
            switch try await self.transition(sessionId, .stop, reason: reason) {
            case .unchanged(let session): return session
            case .refused(let message, _): throw ServiceError.conflict(message, code: "invalid_state")
            case .moved:
                await self.driver.stop(sessionId: sessionId, grace: self.stopGrace)
                await self.driver.remove(sessionId: sessionId)
                self.channels.close(sessionId)
                return try await self.transition(sessionId, .stopped, reason: "agent stopped", update: Self.clearAgent).session
            }
        }
    }

    /// Deletes a session, stopping its agent first if it runs.
    func delete(_ sessionId: String, reason: String) async throws {
        try await mutex.withLock(sessionId) {
            let session = try await self.load(sessionId)
            guard case .moveTo = SessionStateMachine.apply(.delete, to: session.state) else {
                throw ServiceError.notFound("session")
            }
            if [.starting, .running, .stopping].contains(session.state) {
                await self.driver.stop(sessionId: sessionId, grace: self.stopGrace)
            }
            await self.driver.remove(sessionId: sessionId)
            self.channels.close(sessionId)
            _ = try await self.transition(sessionId, .delete, reason: reason, update: Self.clearAgent)
        }
    }

    /// The runtime saw the agent end without being asked to.
    func agentExited(_ sessionId: String, description: String) async {
        do {
            try await mutex.withLock(sessionId) {
                _ = try await self.fail(sessionId, .agentFailed, reason: description)
            }
        } catch {
            logger.error("could not record agent exit", metadata: ["session.id": "\(sessionId)", "error": "\(error)"])
        }
    }

    /// After a restart: re-attach to agents still running; the rest are lost (a stopping session
    /// then sleeps, a starting or running one has failed).
    func recover() async throws {
        for session in try await store.sessions(inStates: [.starting, .running, .stopping]) {
            try await mutex.withLock(session.id) {
                // Adopted first: the runtime then knows the uid the live agent runs as, and the
                // channel reopens for that uid in the directory the agent has bound.
                if session.state != .stopping, let pid = session.agentPid, let endpoint = session.agentEndpoint,
                   await self.driver.adopt(sessionId: session.id, handle: AgentHandle(pid: pid, endpoint: endpoint))
                {
                    if (try? await self.channels.open(session.id, owner: try self.driver.agentOwner(of: session.id))) != nil {
                        if session.state == .starting { self.watchReadiness(session.id) }
                        return
                    }
                    await self.driver.stop(sessionId: session.id, grace: .seconds(2))
                }
                self.channels.close(session.id)
                if session.state == .stopping { await self.driver.remove(sessionId: session.id) }
                let reason = session.state == .stopping
                    ? "stop completed after a control-plane restart" : "the agent was lost while the control plane was down"
                _ = try await self.fail(session.id, .agentLost, reason: reason)
            }
        }
    }

    private func watchReadiness(_ sessionId: String) {
        let timeout = readyTimeout
        Task {
            try? await Task.sleep(for: timeout)
            try? await self.mutex.withLock(sessionId) {
                guard try await self.load(sessionId).state == .starting else { return }
                await self.driver.stop(sessionId: sessionId, grace: .seconds(2))
                _ = try await self.fail(sessionId, .readyTimedOut, reason: "the agent did not report ready within \(timeout)")
            }
        }
    }

    /// Applies a command that ends the agent (failure, ready timeout, loss) and closes the
    /// session's channel when the machine moved it.
    private func fail(_ sessionId: String, _ command: SessionStateMachine.Command, reason: String) async throws
        -> SessionRecord
    {
        let outcome = try await transition(sessionId, command, reason: reason, update: Self.clearAgent)
        if case .moved(let session, _) = outcome {
            if session.state == .failed {
                logger.warning("session failed", metadata: ["session.id": "\(sessionId)", "reason": "\(reason)"])
            }
            channels.close(sessionId)
        }
        return outcome.session
    }

    private func transition(_ sessionId: String, _ command: SessionStateMachine.Command, reason: String,
                            update: @Sendable @escaping (inout SessionRecord) -> Void = { _ in }) async throws
        -> SessionTransition
    {
        guard let outcome = try await store.transition(sessionId: sessionId, command, reason: reason, update: update)
        else { throw ServiceError.notFound("session") }
        return outcome
    }

    private func load(_ sessionId: String) async throws -> SessionRecord {
        guard let session = try await store.session(id: sessionId) else { throw ServiceError.notFound("session") }
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
