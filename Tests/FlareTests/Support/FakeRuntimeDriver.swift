@testable import ControlPlane
import Foundation

/// A runtime that starts nothing: it records what the control plane asked of it, and fails
/// starts when told to. For fast tests of the services and the lifecycle; the end-to-end tests
/// use the real host and docker runtimes.
final class FakeRuntimeDriver: RuntimeDriver, @unchecked Sendable {
    enum Call: Equatable {
        case start(String), stop(String), remove(String)
    }

    private let lock = NSLock()
    private var recorded: [Call] = []
    private var tokens: [String: String] = [:]
    /// When set, every start throws this.
    var failStarts: String?
    let events: AsyncStream<RuntimeEvent>

    init() {
        events = AsyncStream { _ in }
    }

    var calls: [Call] { lock.withLock { recorded } }

    /// The agent token the session's last start handed its agent.
    func agentToken(of sessionId: String) -> String? { lock.withLock { tokens[sessionId] } }

    func start(_ spec: AgentLaunchSpec) async throws -> AgentHandle {
        if let failStarts = lock.withLock({ failStarts }) { throw RuntimeDriverError(description: failStarts) }
        lock.withLock {
            recorded.append(.start(spec.sessionId))
            tokens[spec.sessionId] = spec.agentToken
        }
        return AgentHandle(pid: 4242, endpoint: "unix:/nonexistent/\(spec.sessionId).sock")
    }

    func stop(sessionId: String, grace: Duration) async { lock.withLock { recorded.append(.stop(sessionId)) } }
    func remove(sessionId: String) async { lock.withLock { recorded.append(.remove(sessionId)) } }
    func adopt(sessionId: String, handle: AgentHandle) async -> Bool { false }
    func logs(sessionId: String, lines: Int) async throws -> String { "" }
}
