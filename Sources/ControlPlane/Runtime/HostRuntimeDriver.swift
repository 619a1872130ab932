import Foundation
import Logging

/// Runs each session's agent as a child process of the server, with a per-session directory
/// standing in for the container's filesystem. For one developer on their own machine.
///
/// Layout under the data directory: `sessions/<id>/fs` (the session's `/`, discarded on stop like a
/// container's filesystem), `logs/<id>.log` (the agent's log, kept), and `run/<id>.sock` (the agent's
/// SSH socket; kept short for the 108-byte Unix path limit).
public final class HostRuntimeDriver: RuntimeDriver, @unchecked Sendable {
    private let dataDirectory: URL
    private let agentExecutable: String
    private let logger: Logger
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    private var adopted: [String: Int32] = [:]
    private var stopping: Set<String> = []
    public let events: AsyncStream<RuntimeEvent>
    private let continuation: AsyncStream<RuntimeEvent>.Continuation

    public init(dataDirectory: URL, agentExecutable: String, logger: Logger) {
        self.dataDirectory = dataDirectory
        self.agentExecutable = agentExecutable
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: RuntimeEvent.self)
    }

    func sessionDirectory(_ id: String) -> URL {
        dataDirectory.appendingPathComponent("sessions").appendingPathComponent(id)
    }

    func socketPath(_ id: String) -> String {
        dataDirectory.appendingPathComponent("run").appendingPathComponent("\(id).sock").path
    }

    public func start(_ spec: AgentLaunchSpec) async throws -> AgentHandle {
        let directory = sessionDirectory(spec.sessionId)
        let root = directory.appendingPathComponent("fs")
        let fm = FileManager.default
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        try fm.createDirectory(at: dataDirectory.appendingPathComponent("run"), withIntermediateDirectories: true)
        try fm.createDirectory(at: dataDirectory.appendingPathComponent("logs"), withIntermediateDirectories: true)
        let logPath = dataDirectory.appendingPathComponent("logs").appendingPathComponent("\(spec.sessionId).log").path
        fm.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()

        let endpoint = "unix:" + socketPath(spec.sessionId)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: agentExecutable)
        process.arguments = [
            "run", "--control-plane", spec.controlPlaneURL, "--session", spec.sessionId,
            "--listen", endpoint, "--root", root.path, "--state-dir", directory.path,
        ]
        var environment = ProcessInfo.processInfo.environment
        environment["FLARE_AGENT_TOKEN"] = spec.agentToken
        process.environment = environment
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let sessionId = spec.sessionId
        process.terminationHandler = { [weak self] process in
            try? log.close()
            self?.processExited(sessionId: sessionId, process: process)
        }
        do {
            try process.run()
        } catch {
            throw RuntimeDriverError(description: "could not start \(agentExecutable): \(error.localizedDescription)")
        }
        lock.withLock {
            processes[sessionId] = process
            stopping.remove(sessionId)
        }
        logger.info("agent started", metadata: ["session.id": "\(sessionId)", "agent.pid": "\(process.processIdentifier)"])
        return AgentHandle(pid: process.processIdentifier, endpoint: endpoint)
    }

    private func processExited(sessionId: String, process: Process) {
        let expected = lock.withLock { () -> Bool in
            if processes[sessionId] === process { processes[sessionId] = nil }
            return stopping.contains(sessionId)
        }
        let how = process.terminationReason == .uncaughtSignal
            ? "killed by signal \(process.terminationStatus)" : "exited with status \(process.terminationStatus)"
        logger.info("agent ended", metadata: ["session.id": "\(sessionId)", "agent.exit": "\(how)"])
        if !expected {
            continuation.yield(.exited(sessionId: sessionId, description: "the agent \(how)"))
        }
    }

    public func stop(sessionId: String, grace: Duration) async {
        let (process, pid) = lock.withLock { () -> (Process?, Int32?) in
            stopping.insert(sessionId)
            return (processes[sessionId], processes[sessionId]?.processIdentifier ?? adopted[sessionId])
        }
        guard let pid else { return }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        func alive() -> Bool { process?.isRunning ?? (kill(pid, 0) == 0) }
        while alive() && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if alive() {
            logger.warning("agent did not stop in time; killing it", metadata: ["session.id": "\(sessionId)"])
            kill(pid, SIGKILL)
            while alive() { try? await Task.sleep(for: .milliseconds(20)) }
        }
        lock.withLock {
            adopted[sessionId] = nil
            processes[sessionId] = nil
        }
    }

    public func logs(sessionId: String, lines: Int) async throws -> String {
        let path = dataDirectory.appendingPathComponent("logs").appendingPathComponent("\(sessionId).log")
        guard let handle = try? FileHandle(forReadingFrom: path) else { return "" }
        defer { try? handle.close() }
        // The last 1 MiB holds far more than `lines` lines of agent log.
        let size = (try? handle.seekToEnd()) ?? 0
        try? handle.seek(toOffset: size > 1 << 20 ? size - (1 << 20) : 0)
        let data = (try? handle.readToEnd()) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .suffix(lines + 1).joined(separator: "\n")
    }

    public func remove(sessionId: String) async {
        try? FileManager.default.removeItem(at: sessionDirectory(sessionId))
        unlink(socketPath(sessionId))
    }

    public func adopt(sessionId: String, handle: AgentHandle) async -> Bool {
        guard Self.isAgent(pid: handle.pid, sessionId: sessionId) else { return false }
        lock.withLock {
            adopted[sessionId] = handle.pid
            stopping.remove(sessionId)
        }
        // Not our child any more: watch for its exit by polling.
        Task { [weak self] in
            while let self, Self.isAgent(pid: handle.pid, sessionId: sessionId) {
                try? await Task.sleep(for: .seconds(1))
            }
            guard let self else { return }
            let expected = self.lock.withLock { () -> Bool in
                defer { self.adopted[sessionId] = nil }
                return self.stopping.contains(sessionId) || self.adopted[sessionId] != handle.pid
            }
            if !expected {
                self.continuation.yield(.exited(sessionId: sessionId, description: "the agent exited"))
            }
        }
        logger.info("re-adopted running agent", metadata: ["session.id": "\(sessionId)", "agent.pid": "\(handle.pid)"])
        return true
    }

    /// True when `pid` is alive and is the agent of `sessionId`.
    static func isAgent(pid: Int32, sessionId: String) -> Bool {
        guard kill(pid, 0) == 0,
              let cmdline = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline"))
        else { return false }
        let arguments = cmdline.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return arguments.first?.hasSuffix("flare-agent") == true && arguments.contains(sessionId)
    }
}

struct RuntimeDriverError: Error, CustomStringConvertible {
    let description: String
}
