import FlareContracts
import Foundation

/// What a session's agent asks of the control plane when it dials home: its configuration, the
/// lifecycle reports (registered, ready, failed, heartbeats) and the commands it runs. Every call
/// is for the agent's own session (``AgentCaller``).
struct AgentService: Sendable {
    let store: Store
    let lifecycle: SessionLifecycle
    let commands: AgentCommandBroker
    /// How often agents report their activity.
    let heartbeatSeconds: Int

    func registered(_ agent: AgentCaller) async throws {
        try await store.updateSession(id: agent.session.id) { $0.lastHeartbeatAt = Date() }
    }

    /// The session's host key, the keys it accepts (the owner's, and the gateways' service keys for
    /// browser terminals), the template's environment and persisted paths, and the snapshot to
    /// restore first.
    func config(_ agent: AgentCaller) async throws -> AgentConfig {
        let session = agent.session
        let keys = try await store.sshKeys(userId: session.ownerId).map(\.publicKey) + store.gatewayServiceKeys()
        let manifest = try await store.templateVersion(id: session.templateVersionId)?.manifest
        var latest: SnapshotRecord?
        if let id = session.latestSnapshotId { latest = try await store.snapshot(id: id) }
        return AgentConfig(
            sessionId: session.id, hostPrivateKey: session.hostPrivateKey, authorizedKeys: keys,
            env: manifest?.env ?? [:], persistedPaths: manifest?.persistedPaths ?? [],
            heartbeatIntervalSeconds: heartbeatSeconds, restoreSnapshot: latest?.reference)
    }

    func heartbeat(_ agent: AgentCaller, _ heartbeat: AgentHeartbeat) async throws {
        let json = String(decoding: try FlareJSON.encoder().encode(heartbeat), as: UTF8.self)
        try await store.updateSession(id: agent.session.id) {
            $0.lastHeartbeatAt = Date()
            $0.activityJson = json
        }
    }

    func ready(_ agent: AgentCaller, _ heartbeat: AgentHeartbeat) async throws {
        try await self.heartbeat(agent, heartbeat)
        try await lifecycle.agentReady(agent.session.id)
    }

    func failed(_ agent: AgentCaller, _ failure: AgentFailure) async {
        await lifecycle.agentExited(agent.session.id, description: String(failure.reason.prefix(500)))
    }

    /// The next command for the agent, waiting up to 25 s (a long poll); nil when none came.
    func nextCommand(_ agent: AgentCaller) async -> AgentCommand? {
        await commands.next(sessionId: agent.session.id, timeout: .seconds(25))
    }

    /// The agent's answer to a command it was given; any other id is not found.
    func finish(_ agent: AgentCaller, command id: String, _ result: AgentCommandResult) async throws {
        guard await commands.finish(id, sessionId: agent.session.id, result) else {
            throw ServiceError.notFound("command \(id)")
        }
    }
}
