import Foundation
import Logging

/// Runs each session's agent in a Docker container, through the Engine API on its Unix socket.
///
/// - The agent is not in the image: a self-contained agent bundle (`Scripts/agent-bundle.sh`) is
///   mounted read-only at `/opt/flare` and run with its own dynamic loader, as the image's user
///   (`flare` in `burstflare/session-base`).
/// - No network by default: the agent dials home over its session's own control channel (the
///   directory `control/<session>/` of the data directory, mounted read-only at `/opt/flare-control`)
///   and serves SSH on a Unix socket in `run/<session>/` (mounted at `/opt/flare-run`, writable by
///   container root only), where the gateway reaches it.
/// - Privilege separation: the agent runs as container root with six capabilities and
///   `no-new-privileges`; every shell, command and sftp server runs as the image's user.
/// - Containers carry the label `burstflare.session=<id>` and are named `flare-<id>`; a restarted
///   server finds them again by name.
public final class DockerRuntimeDriver: RuntimeDriver, @unchecked Sendable {
    public struct Configuration: Sendable {
        public var dataDirectory: URL
        /// The directory made by `Scripts/agent-bundle.sh`.
        public var agentBundle: String
        public var image = "burstflare/session-base:latest"
        /// `none` unless configured otherwise.
        public var networkMode = "none"
        public var memoryBytes: Int64? = 4 << 30
        public var nanoCPUs: Int64? = 2_000_000_000
        public var pidsLimit: Int64? = 4096
        public var dockerSocket = "/var/run/docker.sock"

        public init(dataDirectory: URL, agentBundle: String) {
            self.dataDirectory = dataDirectory
            self.agentBundle = agentBundle
        }
    }

    static let label = "burstflare.session"
    /// Which server's data directory a container belongs to (several servers can share an engine).
    static let dataLabel = "burstflare.data"
    /// Where the control plane's agent socket is, inside a container.
    static let controlPlaneURL = AgentChannels.url(socketPath: "/opt/flare-control/agent.sock")

    let configuration: Configuration
    let engine: DockerEngine
    private let logger: Logger
    private let lock = NSLock()
    /// The container each session's watcher follows, by id.
    private var watched: [String: String] = [:]
    private var stopping: Set<String> = []
    public let events: AsyncStream<RuntimeEvent>
    private let continuation: AsyncStream<RuntimeEvent>.Continuation

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.engine = DockerEngine(socketPath: configuration.dockerSocket)
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: RuntimeEvent.self)
    }

    static func containerName(_ sessionId: String) -> String { "flare-\(sessionId)" }

    func runDirectory(_ sessionId: String) -> URL {
        configuration.dataDirectory.appendingPathComponent("run").appendingPathComponent(sessionId)
    }

    /// Checks the engine answers and the image and bundle exist, so misconfiguration fails at start.
    public func check() async throws {
        try await engine.ping()
        guard FileManager.default.isExecutableFile(atPath: configuration.agentBundle + "/bin/flare-agent") else {
            throw RuntimeDriverError(description: "no agent bundle at \(configuration.agentBundle); "
                + "make one with Scripts/agent-bundle.sh")
        }
    }

    /// The agent's host key and snapshot archives, in a fresh volume only container root can enter.
    static let agentStateDirectory = "/var/lib/flare-agent"

    /// The capabilities the agent keeps as container root: drop to the session user for every
    /// child (SETUID, SETGID), give the user their terminal and restored files (CHOWN, FOWNER),
    /// restore into the user's directories (DAC_OVERRIDE), and signal the user's processes (KILL).
    static let agentCapabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETUID", "SETGID", "KILL"]

    public func start(_ spec: AgentLaunchSpec) async throws -> AgentHandle {
        let name = Self.containerName(spec.sessionId)
        let run = runDirectory(spec.sessionId)
        let fm = FileManager.default
        try? fm.removeItem(at: run)
        // The agent runs as container root and creates its SSH socket here; the session's user
        // cannot write here, so the socket cannot be replaced from inside.
        try fm.createDirectory(at: run, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        chmod(run.path, 0o755)
        try await engine.remove(name)
        let image = spec.image ?? configuration.image
        let sessionUser = try await Self.sessionUser(of: engine.image(image)?.Config.User)
        let resources = spec.resources
        let config = DockerEngine.ContainerConfig(
            Image: image,
            Cmd: ["/opt/flare/lib/ld-linux-x86-64.so.2", "--library-path", "/opt/flare/lib", "/opt/flare/bin/flare-agent",
                  "run", "--control-plane", Self.controlPlaneURL, "--session", spec.sessionId,
                  "--listen", "unix:/opt/flare-run/ssh.sock", "--root", "/", "--user", sessionUser,
                  "--state-dir", Self.agentStateDirectory],
            Env: ["FLARE_AGENT_TOKEN=\(spec.agentToken)"],
            Labels: [Self.label: spec.sessionId, Self.dataLabel: configuration.dataDirectory.path],
            User: "0:0", WorkingDir: "/",
            HostConfig: .init(
                Binds: ["\(configuration.agentBundle):/opt/flare:ro", "\(run.path):/opt/flare-run",
                        "\(spec.controlDirectory.path):/opt/flare-control:ro"],
                NetworkMode: configuration.networkMode,
                Memory: resources?.memoryMB.map { Int64($0) << 20 } ?? configuration.memoryBytes,
                MemorySwap: resources?.memoryMB.map { Int64($0) << 20 } ?? configuration.memoryBytes,
                NanoCpus: resources?.cpus.map { Int64($0 * 1e9) } ?? configuration.nanoCPUs,
                PidsLimit: resources?.pids.map(Int64.init) ?? configuration.pidsLimit,
                CapDrop: ["ALL"], CapAdd: Self.agentCapabilities, SecurityOpt: ["no-new-privileges:true"],
                // The agent's host key and snapshot archives: on disk (archives can be large), in a
                // volume that starts empty whatever the image holds at that path.
                Mounts: [.init(Target: Self.agentStateDirectory)]))
        let id: String
        do {
            id = try await engine.create(name: name, config)
            try await engine.start(id)
        } catch let error as DockerEngineError {
            throw RuntimeDriverError(description: "could not start the session's container: \(error)")
        }
        let pid = try await engine.inspect(id)?.State.Pid ?? 0
        lock.withLock {
            stopping.remove(spec.sessionId)
            watched[spec.sessionId] = id
        }
        watch(spec.sessionId, container: id)
        logger.info("container started", metadata: ["session.id": "\(spec.sessionId)", "container.id": "\(id.prefix(12))"])
        return AgentHandle(pid: pid, endpoint: "unix:" + run.appendingPathComponent("ssh.sock").path)
    }

    /// The user the session's shells run as: the image's own user unless that is root or unset,
    /// then `flare` (the agent refuses to start if the image has no such user).
    static func sessionUser(of imageUser: String?) -> String {
        let user = (imageUser ?? "").split(separator: ":").first.map(String.init) ?? ""
        return user.isEmpty || user == "root" || user == "0" ? "flare" : user
    }

    public func stop(sessionId: String, grace: Duration) async {
        lock.withLock { _ = stopping.insert(sessionId) }
        do {
            try await engine.stop(Self.containerName(sessionId), seconds: Int(grace.components.seconds))
        } catch {
            logger.warning("stopping the container failed; killing it", metadata: [
                "session.id": "\(sessionId)", "error": "\(error)",
            ])
            try? await engine.kill(Self.containerName(sessionId))
        }
    }

    public func logs(sessionId: String, lines: Int) async throws -> String {
        guard try await engine.inspect(Self.containerName(sessionId)) != nil else { return "" }
        return try await engine.logs(Self.containerName(sessionId), tail: lines)
    }

    public func remove(sessionId: String) async {
        lock.withLock { _ = stopping.insert(sessionId) }
        try? await engine.remove(Self.containerName(sessionId))
        try? FileManager.default.removeItem(at: runDirectory(sessionId))
    }

    public func adopt(sessionId: String, handle: AgentHandle) async -> Bool {
        guard let container = try? await engine.inspect(Self.containerName(sessionId)), container.State.Running,
              container.Config.Labels?[Self.label] == sessionId
        else { return false }
        lock.withLock {
            stopping.remove(sessionId)
            watched[sessionId] = container.Id
        }
        watch(sessionId, container: container.Id)
        logger.info("re-adopted running container", metadata: ["session.id": "\(sessionId)"])
        return true
    }

    /// Polls the container until it is no longer running; an exit nobody asked for becomes an event
    /// with the reason (exit status, OOM kill).
    private func watch(_ sessionId: String, container id: String) {
        Task { [weak self] in
            while let self {
                try? await Task.sleep(for: .milliseconds(500))
                let state: DockerEngine.ContainerState?
                do {
                    state = try await self.engine.inspect(id)?.State
                } catch {
                    continue
                }
                if state?.Running == true { continue }
                let (current, expected) = self.lock.withLock { () -> (Bool, Bool) in
                    guard self.watched[sessionId] == id else { return (false, true) }
                    self.watched[sessionId] = nil
                    return (true, self.stopping.contains(sessionId))
                }
                if current && !expected {
                    let description = state.map(Self.describe) ?? "the session's container was removed"
                    self.logger.warning("container ended", metadata: ["session.id": "\(sessionId)", "reason": "\(description)"])
                    self.continuation.yield(.exited(sessionId: sessionId, description: description))
                }
                return
            }
        }
    }

    static func describe(_ state: DockerEngine.ContainerState) -> String {
        if state.OOMKilled { return "the container ran out of memory and was killed" }
        if state.ExitCode >= 128 { return "the container was killed by signal \(state.ExitCode - 128)" }
        return "the container exited with status \(state.ExitCode)"
    }
}
