import Foundation
import Logging

/// Runs each session's agent on this machine, confined by a ``HostSandbox`` (or, in single-user
/// mode without one, as a plain child process of the server).
///
/// Layout under the data directory: `sessions/<id>/fs` (the session's `/`, discarded on stop like a
/// container's filesystem, owned by the session's uid), `sessions/<id>/identity` (its `passwd`),
/// `sessions/<id>/uid` (the uid it last ran as), `logs/<id>.log` (the agent's log, written by the
/// server), and `run/<id>/ssh.sock` (the agent's SSH socket).
///
/// A server running as root gives each running session a uid of its own from the sandbox range
/// and a cgroup with its memory, CPU and process limits (``HostCgroups``).
public final class HostRuntimeDriver: RuntimeDriver, @unchecked Sendable {
    private let dataDirectory: URL
    private let agentExecutable: String
    /// Nil only in single-user mode where no sandbox can be made.
    private let sandbox: HostSandbox?
    /// Nil when the server cannot make cgroups (it is not root): sessions then have no limits.
    private let cgroups: HostCgroups?
    private let defaultLimits: HostCgroups.Limits
    private let logger: Logger
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    /// The agent's own pid (inside the sandbox's outer bwrap) for each running session.
    private var agentPids: [String: Int32] = [:]
    private var adopted: [String: Int32] = [:]
    private var stopping: Set<String> = []
    /// The uid of each session that runs or is about to, when sessions get their own.
    private var uids: [String: uid_t] = [:]
    public let events: AsyncStream<RuntimeEvent>
    private let continuation: AsyncStream<RuntimeEvent>.Continuation

    public init(dataDirectory: URL, agentExecutable: String, sandbox: HostSandbox?, cgroups: HostCgroups? = nil,
                defaultLimits: HostCgroups.Limits = .init(memoryBytes: 4 << 30, cpus: 2, pids: 4096), logger: Logger) {
        self.dataDirectory = dataDirectory
        self.agentExecutable = agentExecutable
        self.sandbox = sandbox
        self.cgroups = cgroups
        self.defaultLimits = defaultLimits
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: RuntimeEvent.self)
    }

    /// The session's uid: the one it ran as last if nothing else runs as it now; else one no other
    /// session has held (so no kernel state a uid keeps, such as keyrings, passes between
    /// sessions), else the one held longest ago. Remembered in `sessions/<id>/uid`. A uid some
    /// process still runs as (an agent the server lost track of) is never handed out.
    public func agentOwner(of sessionId: String) throws -> uid_t? {
        guard let sandbox else { return nil }
        guard sandbox.hasSessionUIDs else { return sandbox.uids.lowerBound }
        let sessions = dataDirectory.appendingPathComponent("sessions")
        let file = sessions.appendingPathComponent(sessionId).appendingPathComponent("uid")
        func recorded(_ file: URL) -> uid_t? {
            (try? String(contentsOf: file, encoding: .utf8)).flatMap { uid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        let uid = try lock.withLock { () throws -> uid_t in
            if let uid = uids[sessionId] { return uid }
            let taken = Set(uids.values).union(Self.uidsOfRunningProcesses().filter { sandbox.uids.contains($0) })
            if let last = recorded(file), sandbox.uids.contains(last), !taken.contains(last) {
                uids[sessionId] = last
                return last
            }
            // Who held which uid, and when last.
            var held: [uid_t: Date] = [:]
            for id in (try? FileManager.default.contentsOfDirectory(atPath: sessions.path)) ?? [] where id != sessionId {
                let other = sessions.appendingPathComponent(id).appendingPathComponent("uid")
                guard let uid = recorded(other) else { continue }
                let when = (try? FileManager.default.attributesOfItem(atPath: other.path)[.modificationDate] as? Date) ?? .distantPast
                held[uid] = max(held[uid] ?? .distantPast, when)
            }
            let free = sandbox.uids.lazy.filter { !taken.contains($0) }
            guard let uid = free.first(where: { held[$0] == nil })
                ?? free.min(by: { (held[$0] ?? .distantPast) < (held[$1] ?? .distantPast) })
            else {
                throw RuntimeDriverError(description: "all \(sandbox.uids.count) sandbox uids are in use; "
                    + "stop a session or widen --sandbox-uid-count")
            }
            uids[sessionId] = uid
            return uid
        }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data("\(uid)\n".utf8).write(to: file)
        return uid
    }

    /// The real uids of every process on the host, from `/proc`.
    static func uidsOfRunningProcesses() -> Set<uid_t> {
        var uids: Set<uid_t> = []
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] where entry.first?.isNumber == true {
            if let pid = Int32(entry), let uid = uid(ofProcess: pid) { uids.insert(uid) }
        }
        return uids
    }

    /// Gives the session's uid back once nothing of the session runs.
    private func release(_ sessionId: String) {
        lock.withLock { _ = uids.removeValue(forKey: sessionId) }
    }

    func sessionDirectory(_ id: String) -> URL {
        dataDirectory.appendingPathComponent("sessions").appendingPathComponent(id)
    }

    func runDirectory(_ id: String) -> URL {
        dataDirectory.appendingPathComponent("run").appendingPathComponent(id)
    }

    /// The session's directories: its `/` (new at every start, as a container's is) and SSH socket
    /// directory owned by the sandbox uid, and its `passwd`. Nothing above them is opened to that
    /// uid: bwrap binds them as root, or as the server's own user.
    private func prepareDirectories(_ id: String, uid: uid_t?) throws -> (root: URL, identity: URL, run: URL) {
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
        guard let sandbox, let uid else { return (root, identity, run) }
        try Data(sandbox.passwd(uid: uid).utf8).write(to: identity.appendingPathComponent("passwd"))
        try Data(sandbox.group(uid: uid).utf8).write(to: identity.appendingPathComponent("group"))
        for path in [identity.appendingPathComponent("passwd"), identity.appendingPathComponent("group")] {
            chmod(path.path, 0o644)
        }
        // The session's `/` is 0755 as a root directory is (bwrap enters it without capabilities);
        // the data directory above keeps everyone else out.
        for (path, mode) in [(root, mode_t(0o755)), (run, mode_t(0o700))] {
            chown(path.path, uid, uid)
            chmod(path.path, mode)
        }
        chmod(identity.path, 0o755)
        chmod(directory.path, 0o700)
        return (root, identity, run)
    }

    public func start(_ spec: AgentLaunchSpec) async throws -> AgentHandle {
        let uid = try agentOwner(of: spec.sessionId)
        let started: AgentHandle
        do {
            started = try await launch(spec, uid: uid)
        } catch {
            release(spec.sessionId)
            throw error
        }
        return started
    }

    private func launch(_ spec: AgentLaunchSpec, uid: uid_t?) async throws -> AgentHandle {
        let (root, identity, run) = try prepareDirectories(spec.sessionId, uid: uid)
        // A cgroup for this run alone: removing it when this agent ends never touches the next run's.
        let cgroup = cgroups.map { _ in "\(spec.sessionId).\(UInt32.random(in: .min ... .max))" }
        let logPath = dataDirectory.appendingPathComponent("logs").appendingPathComponent("\(spec.sessionId).log").path
        FileManager.default.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600])
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()

        let process = Process()
        var environment = ["FLARE_AGENT_TOKEN": spec.agentToken, "LANG": "C.UTF-8",
                           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        let endpoint = "unix:" + run.appendingPathComponent("ssh.sock").path
        if let sandbox, let uid {
            var command = sandbox.agentCommand(
                uid: uid, agent: agentExecutable, root: root.path, identity: identity.path, runDirectory: run.path,
                controlDirectory: spec.controlDirectory.path,
                agentArguments: ["run", "--control-plane", AgentChannels.url(socketPath: "/run/flare-control/agent.sock"),
                                 "--session", spec.sessionId, "--listen", "unix:/run/flare/ssh.sock", "--root", "/",
                                 "--home", "/home/flare", "--state-dir", "/var/lib/flare-agent"])
            if let cgroups, let cgroup {
                let resources = spec.resources
                let limits = HostCgroups.Limits(
                    memoryBytes: resources?.memoryMB.map { Int64($0) << 20 } ?? defaultLimits.memoryBytes,
                    cpus: resources?.cpus ?? defaultLimits.cpus, pids: resources?.pids ?? defaultLimits.pids)
                command = HostCgroups.joinCommand(try cgroups.create(cgroup, limits: limits), then: command)
            }
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
        process.terminationHandler = { [weak self, cgroups] process in
            try? log.close()
            self?.processExited(sessionId: sessionId, process: process)
            if let cgroups, let cgroup { cgroups.remove(cgroup) }
        }
        do {
            try process.run()
        } catch {
            if let cgroups, let cgroup { cgroups.remove(cgroup) }
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
        let (expected, current) = lock.withLock { () -> (Bool, Bool) in
            let current = processes[sessionId] === process
            if current { processes[sessionId] = nil }
            return (stopping.contains(sessionId), current)
        }
        if current { release(sessionId) }
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
        // The agent is gone (an adopted one's watcher no longer sees it as its own).
        release(sessionId)
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
        let cgroup = cgroups.flatMap { $0.name(ofProcess: handle.pid) }
        if sandbox?.hasSessionUIDs == true, let uid = Self.uid(ofProcess: handle.pid) {
            lock.withLock { uids[sessionId] = uid }
        }
        // Not our child any more: watch for its exit by polling.
        Task { [weak self, cgroups] in
            while let self, Self.isAgent(pid: handle.pid, sessionId: sessionId) {
                try? await Task.sleep(for: .seconds(1))
            }
            guard let self else { return }
            let (expected, current) = self.lock.withLock { () -> (Bool, Bool) in
                let current = self.adopted[sessionId] == handle.pid && self.processes[sessionId] == nil
                defer { if current { self.adopted[sessionId] = nil } }
                return (self.stopping.contains(sessionId) || !current, current)
            }
            if current { self.release(sessionId) }
            if let cgroups, let cgroup { DispatchQueue.global().async { cgroups.remove(cgroup) } }
            if !expected {
                self.continuation.yield(.exited(sessionId: sessionId, description: "the agent exited"))
            }
        }
        logger.info("re-adopted running agent", metadata: ["session.id": "\(sessionId)", "agent.pid": "\(handle.pid)"])
        return true
    }

    /// The real uid of a process, from `/proc`.
    static func uid(ofProcess pid: Int32) -> uid_t? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Uid:") })
        else { return nil }
        return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().first.flatMap { uid_t($0) }
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
