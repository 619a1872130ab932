import Foundation
import Logging

/// Runs each session's agent on this machine, confined by a ``HostSandbox`` (or, in single-user
/// mode without one, as a plain child process of the server).
///
/// Layout under the data directory: `sessions/<id>/fs` (the session's `/`, discarded on stop like a
/// container's filesystem, owned by the sandbox uid), `sessions/<id>/identity` (its `passwd`),
/// `logs/<id>.log` (the agent's log, written by the server), and `run/<id>/ssh.sock` (the agent's
/// SSH socket).
public final class HostRuntimeDriver: RuntimeDriver, @unchecked Sendable {
    private let dataDirectory: URL
    private let agentExecutable: String
    /// Nil only in single-user mode where no sandbox can be made.
    private let sandbox: HostSandbox?
    private let logger: Logger
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    /// The agent's own pid (inside the sandbox's outer bwrap) for each running session.
    private var agentPids: [String: Int32] = [:]
    private var adopted: [String: Int32] = [:]
    private var stopping: Set<String> = []
    public let events: AsyncStream<RuntimeEvent>
    private let continuation: AsyncStream<RuntimeEvent>.Continuation

    public init(dataDirectory: URL, agentExecutable: String, sandbox: HostSandbox?, logger: Logger) {
        self.dataDirectory = dataDirectory
        self.agentExecutable = agentExecutable
        self.sandbox = sandbox
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: RuntimeEvent.self)
    }

    public var agentOwner: uid_t? { sandbox?.uid }

    func sessionDirectory(_ id: String) -> URL {
        dataDirectory.appendingPathComponent("sessions").appendingPathComponent(id)
    }

    func runDirectory(_ id: String) -> URL {
        dataDirectory.appendingPathComponent("run").appendingPathComponent(id)
    }

    /// The session's directories: its `/` (new at every start, as a container's is) and SSH socket
    /// directory owned by the sandbox uid, and its `passwd`. Nothing above them is opened to that
    /// uid: bwrap binds them as root, or as the server's own user.
    private func prepareDirectories(_ id: String) throws -> (root: URL, identity: URL, run: URL) {
        let fm = FileManager.default
        let directory = sessionDirectory(id)
        let root = directory.appendingPathComponent("fs")
        let identity = directory.appendingPathComponent("identity")
        let run = runDirectory(id)
        try? fm.removeItem(at: run)
        for parent in [dataDirectory.appendingPathComponent("sessions"), dataDirectory.appendingPathComponent("run"),
                       dataDirectory.appendingPathComponent("logs")] {
            try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        }
        // Never a filesystem left from an earlier run: the mounts land inside it, and what a
        // session left there (a link where /usr goes) must not steer them.
        try? fm.removeItem(at: root)
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        try fm.createDirectory(at: identity, withIntermediateDirectories: true)
        try fm.createDirectory(at: run, withIntermediateDirectories: true)
        guard let sandbox else { return (root, identity, run) }
        try Data(sandbox.passwd.utf8).write(to: identity.appendingPathComponent("passwd"))
        try Data(sandbox.group.utf8).write(to: identity.appendingPathComponent("group"))
        for path in [identity.appendingPathComponent("passwd"), identity.appendingPathComponent("group")] {
            chmod(path.path, 0o644)
        }
        // The session's `/` is 0755 as a root directory is (bwrap enters it without capabilities);
        // the data directory above keeps everyone else out.
        for (path, mode) in [(root, mode_t(0o755)), (run, mode_t(0o700))] {
            chown(path.path, sandbox.uid, sandbox.uid)
            chmod(path.path, mode)
        }
        chmod(identity.path, 0o755)
        chmod(directory.path, 0o700)
        return (root, identity, run)
    }

    public func start(_ spec: AgentLaunchSpec) async throws -> AgentHandle {
        let (root, identity, run) = try prepareDirectories(spec.sessionId)
        let logPath = dataDirectory.appendingPathComponent("logs").appendingPathComponent("\(spec.sessionId).log").path
        FileManager.default.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600])
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()

        let process = Process()
        var environment = ["FLARE_AGENT_TOKEN": spec.agentToken, "LANG": "C.UTF-8",
                           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        let endpoint = "unix:" + run.appendingPathComponent("ssh.sock").path
        if let sandbox {
            let command = sandbox.agentCommand(
                agent: agentExecutable, root: root.path, identity: identity.path, runDirectory: run.path,
                controlDirectory: spec.controlDirectory.path,
                agentArguments: ["run", "--control-plane", AgentChannels.url(socketPath: "/run/flare-control/agent.sock"),
                                 "--session", spec.sessionId, "--listen", "unix:/run/flare/ssh.sock", "--root", "/",
                                 "--home", "/home/flare", "--state-dir", "/var/lib/flare-agent"])
            process.executableURL = URL(fileURLWithPath: command[0])
            process.arguments = Array(command.dropFirst())
        } else {
            // Single-user mode without a sandbox: the agent is the server's own child, as its user.
            process.executableURL = URL(fileURLWithPath: agentExecutable)
            process.arguments = [
                "run", "--control-plane",
                AgentChannels.url(socketPath: spec.controlDirectory.appendingPathComponent("agent.sock").path),
                "--session", spec.sessionId, "--listen", endpoint, "--root", root.path,
                "--state-dir", sessionDirectory(spec.sessionId).path,
            ]
            environment["HOME"] = ProcessInfo.processInfo.environment["HOME"]
        }
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
            throw RuntimeDriverError(description: "could not start \(process.executableURL?.path ?? agentExecutable): "
                + error.localizedDescription)
        }
        // The outer bwrap's only child is the agent (pid 1 of the sandbox): signals go to it.
        let agentPid = sandbox == nil ? process.processIdentifier : await Self.onlyChild(of: process)
        lock.withLock {
            processes[sessionId] = process
            agentPids[sessionId] = agentPid
            stopping.remove(sessionId)
        }
        logger.info("agent started", metadata: ["session.id": "\(sessionId)", "agent.pid": "\(agentPid)",
                                                "agent.confined": "\(sandbox != nil)"])
        return AgentHandle(pid: agentPid, endpoint: endpoint)
    }

    /// The child bwrap forks for the command, once it exists (or the process itself, if it ended).
    static func onlyChild(of process: Process) async -> Int32 {
        let pid = process.processIdentifier
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(pid)/children", encoding: .utf8),
               let child = text.split(separator: " ").compactMap({ Int32($0) }).first {
                return child
            }
            guard process.isRunning else { break }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return pid
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
            return (processes[sessionId], agentPids[sessionId] ?? adopted[sessionId])
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
            agentPids[sessionId] = nil
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
        try? FileManager.default.removeItem(at: runDirectory(sessionId))
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
