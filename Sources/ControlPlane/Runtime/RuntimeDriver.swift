import FlareContracts
import Foundation

/// What a runtime needs to start a session's agent.
public struct AgentLaunchSpec: Sendable {
    public var sessionId: String
    /// The session's control channel: a directory holding `agent.sock`, which the runtime makes
    /// reachable to the agent alone (read-only: the session cannot replace the socket).
    public var controlDirectory: URL
    /// The per-session secret the agent dials home with.
    public var agentToken: String
    /// The template version's built image (docker runtime), and its limits.
    public var image: String? = nil
    public var resources: TemplateResources? = nil
}

/// A running agent as the runtime reports it.
public struct AgentHandle: Sendable, Equatable {
    public var pid: Int32
    /// Where the agent serves SSH: `unix:/path`.
    public var endpoint: String
}

/// Something that happened to an agent outside the control plane's own requests.
public enum RuntimeEvent: Sendable, Equatable {
    /// The agent process ended; `status` as the runtime saw it.
    case exited(sessionId: String, description: String)
}

/// Starts, stops, removes and inspects sessions' agents. `host` runs them as child processes;
/// `docker` (later) as containers.
public protocol RuntimeDriver: Sendable {
    /// Starts the agent; returns once the process exists (not once it is ready).
    func start(_ spec: AgentLaunchSpec) async throws -> AgentHandle
    /// Asks the agent to stop (SIGTERM), waits up to `grace`, then kills it.
    func stop(sessionId: String, grace: Duration) async
    /// Removes everything the runtime keeps for the session (its directory, its socket).
    func remove(sessionId: String) async
    /// After a control-plane restart: re-attaches to a still-running agent. False if it is gone.
    func adopt(sessionId: String, handle: AgentHandle) async -> Bool
    /// The agent's recent output (its log), the last `lines` lines.
    func logs(sessionId: String, lines: Int) async throws -> String
    /// Exits and other events the control plane did not ask for.
    var events: AsyncStream<RuntimeEvent> { get }
    /// The uid the session's agent runs as on the host when it is not the server's own or root's
    /// (a sandbox uid): it gets the session's control-channel directory. Called before `start`.
    func agentOwner(of sessionId: String) throws -> uid_t?
}

extension RuntimeDriver {
    public func agentOwner(of sessionId: String) throws -> uid_t? { nil }
}
