import ArgumentParser
import ControlPlane
import FlareContracts
import Foundation
import Logging
import ServiceLifecycle

@main
struct FlareServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flare-server",
        abstract: "The BurstFlare control plane, with the gateway embedded.",
        discussion: """
            Everything is embedded: SQLite and per-session directories in --data-dir, and the host
            runtime, which runs each session's flare-agent as a child process.

            Example:
              flare-server --data-dir ./.flare --port 8787
            """)

    @Option(help: "Data directory (env FLARE_DATA_DIR).")
    var dataDir: String = ProcessInfo.processInfo.environment["FLARE_DATA_DIR"] ?? "./.flare"
    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"
    @Option(help: "Port to listen on; 0 picks a free one (env FLARE_PORT).")
    var port: Int = Int(ProcessInfo.processInfo.environment["FLARE_PORT"] ?? "") ?? 8787
    @Option(help: "Session runtime: host (child processes) or docker (containers; see Scripts/docker-setup.sh).")
    var runtime: String = ProcessInfo.processInfo.environment["FLARE_RUNTIME"] ?? "host"
    @Option(help: "docker runtime: the agent bundle made by Scripts/agent-bundle.sh (default: <data-dir>/agent-bundle, made on start).")
    var agentBundle: String?
    @Option(help: "docker runtime: the image sessions run in.")
    var dockerImage: String = "burstflare/session-base:latest"
    @Option(help: "docker runtime: the containers' network mode.")
    var dockerNetwork: String = "none"
    @Option(help: "The flare-agent binary (default: next to flare-server; env FLARE_AGENT_BIN).")
    var agentBinary: String?
    @Option(help: "Write the bound port to this file once listening.")
    var portFile: String?
    @Option(help: "Drop a client that has not sent its request headers within this many seconds.")
    var headerTimeoutSeconds: Int = 10
    @Option(help: "Close SSH and terminal connections after this many seconds without traffic.")
    var idleConnectionSeconds: Int = 3600
    @Option(help: "Seconds an access token lives before the client refreshes it (refresh tokens live 30 days unused).")
    var accessTokenSeconds: Int = 15 * 60
    @Option(help: "Seconds a device sign-in code (flare auth login --device) waits for approval.")
    var deviceCodeSeconds: Int = 10 * 60
    @Option(help: "bcrypt cost for password hashes (4-31).")
    var bcryptCost: UInt8 = 11
    @Option(help: "Seconds between agent heartbeats (activity reports).")
    var agentHeartbeatSeconds: Int = 15
    @Option(help: "Seconds between reconcile passes (idle sleep, expiry, blob collection).")
    var reconcileSeconds: Int = 15
    @Option(help: "Snapshot storage each user may hold, in MiB.")
    var maxStorageMib: Int64 = 100 * 1024
    @Option(help: "docker runtime: the largest template bundle accepted, in MiB.")
    var maxBundleMib: Int64 = 256
    @Option(help: "host runtime, server running as root: the first of the unprivileged uids sessions run as (one each).")
    var sandboxUid: UInt32 = 1_879_048_192
    @Option(help: "host runtime, server running as root: how many sandbox uids, the most sessions running at once.")
    var sandboxUidCount: UInt32 = 10_000
    @Flag(help: "One account only: registration closes after the first; sessions may run unconfined without bubblewrap.")
    var singleUser = false
    @Option(help: "The most memory a template may ask for per session, in MiB (more is refused at upload).")
    var maxSessionMemoryMib: Int = 16 * 1024
    @Option(help: "The most CPUs a template may ask for per session.")
    var maxSessionCpus: Double = 4
    @Option(help: "The most processes a template may ask for per session.")
    var maxSessionPids: Int = 8192
    @Option(help: ArgumentHelp(
        "docker runtime: the network a template's setup script runs in.",
        discussion: "none (default) or an isolated egress network you created with `docker network create`; never host."))
    var buildNetwork: String = "none"
    @Option(help: "docker runtime: memory for a template's setup script, in MiB.")
    var buildMemoryMib: Int64 = 2048
    @Option(help: "docker runtime: a template's setup script is stopped after this many minutes.")
    var buildTimeoutMinutes: Int = 20

    func validate() throws {
        guard runtime == "host" || runtime == "docker" else { throw ValidationError("--runtime must be 'host' or 'docker'") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard (4...31).contains(bcryptCost) else { throw ValidationError("--bcrypt-cost must be 4-31") }
        guard !["host", "bridge", "default"].contains(buildNetwork), !buildNetwork.hasPrefix("container:") else {
            throw ValidationError("--build-network must be none or an isolated network of your own, "
                + "never the host's (setup scripts are untrusted code)")
        }
        guard sandboxUid > 0, UInt64(sandboxUid) + UInt64(max(1, sandboxUidCount)) < UInt64(UInt32.max) else {
            throw ValidationError("--sandbox-uid and --sandbox-uid-count must give uids between 1 and 4294967294")
        }
        guard (1...3600).contains(agentHeartbeatSeconds) else {
            throw ValidationError("--agent-heartbeat-seconds must be 1-3600")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["FLARE_LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0) } ?? .info
            return handler
        }
        let logger = Logger(label: "flare-server")
        let executableDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent()
        let agent = agentBinary ?? ProcessInfo.processInfo.environment["FLARE_AGENT_BIN"]
            ?? executableDirectory.appendingPathComponent("flare-agent").path
        guard FileManager.default.isExecutableFile(atPath: agent) else {
            throw ValidationError("flare-agent not found at \(agent); pass --agent-binary")
        }
        var configuration = ControlPlaneConfiguration(
            dataDirectory: URL(fileURLWithPath: dataDir).standardizedFileURL, agentExecutable: agent)
        configuration.host = host
        if runtime == "docker" {
            let dataURL = URL(fileURLWithPath: dataDir).standardizedFileURL
            let bundle = agentBundle ?? dataURL.appendingPathComponent("agent-bundle").path
            if agentBundle == nil { try ServerService.makeAgentBundle(agent: agent, at: bundle, executableDirectory: executableDirectory) }
            var docker = DockerRuntimeDriver.Configuration(dataDirectory: dataURL, agentBundle: bundle)
            docker.image = dockerImage
            docker.networkMode = dockerNetwork
            configuration.runtime = .docker(docker)
        }
        configuration.port = port
        configuration.idleConnectionTimeout = .seconds(max(1, idleConnectionSeconds))
        configuration.bcryptCost = bcryptCost
        configuration.accessTokenLifetime = .seconds(max(1, accessTokenSeconds))
        configuration.deviceCodeLifetime = .seconds(max(1, deviceCodeSeconds))
        configuration.agentHeartbeatSeconds = agentHeartbeatSeconds
        configuration.reconcileInterval = .seconds(max(1, reconcileSeconds))
        configuration.maxStoragePerUser = max(1, maxStorageMib) << 20
        configuration.maxBundleBytes = max(1, maxBundleMib) << 20
        configuration.headerTimeout = .seconds(max(1, headerTimeoutSeconds))
        configuration.buildLimits.setupNetwork = buildNetwork
        configuration.buildLimits.memoryBytes = max(64, buildMemoryMib) << 20
        configuration.buildLimits.timeout = .seconds(60 * max(1, buildTimeoutMinutes))
        configuration.sandboxUIDs = sandboxUid...(sandboxUid + max(1, sandboxUidCount) - 1)
        configuration.singleUser = singleUser
        configuration.resourceCeilings = TemplateResources(
            memoryMB: max(64, maxSessionMemoryMib), cpus: max(0.1, maxSessionCpus), pids: max(16, maxSessionPids))
        let server = try ControlPlaneServer(configuration: configuration, logger: logger)
        let host = self.host
        let portFile = self.portFile
        try await server.prepare()
        // Every part of the server in one group: SIGTERM or SIGINT shuts them down in order (the
        // long polls and streams, then the HTTP server's requests in flight, then the loops).
        let group = ServiceGroup(configuration: server.groupConfiguration(onListening: { port in
            FileHandle.standardOutput.write(Data("flare-server listening on http://\(host):\(port)\n".utf8))
            if let portFile { try? "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8) }
        }, stopOnSignals: true))
        try await group.run()
    }
}

enum ServerService {

    /// Runs Scripts/agent-bundle.sh (found next to the package, or in the path) for `agent`.
    static func makeAgentBundle(agent: String, at bundle: String, executableDirectory: URL) throws {
        let candidates = [executableDirectory.appendingPathComponent("../../Scripts/agent-bundle.sh").path,
                          executableDirectory.appendingPathComponent("../../../Scripts/agent-bundle.sh").path,
                          "Scripts/agent-bundle.sh"]
        guard let script = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw ValidationError("Scripts/agent-bundle.sh not found; pass --agent-bundle")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, agent, bundle]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("making the agent bundle failed") }
    }
}
