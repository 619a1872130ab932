import Agent
import ArgumentParser
import FlareContracts
import FlareSystem
import Foundation
import Logging
import ServiceLifecycle

extension FlareAgent {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve one session under a runtime: dial home, serve SSH, heartbeat.",
            discussion: "Started by the runtime driver; the agent token comes from FLARE_AGENT_TOKEN.")

        @Option(help: "The control plane's URL.")
        var controlPlane: String
        @Option(name: .customLong("session"), help: "The session this agent serves.")
        var sessionId: String
        @OptionGroup var options: SessionOptions
        @Option(help: "Where the agent keeps its own files (host key).")
        var stateDir: String

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            var logger = Logger(label: "flare-agent")
            logger[metadataKey: "session.id"] = "\(sessionId)"
            Descriptors.hideFromSameUserProcesses()
            guard let token = ProcessInfo.processInfo.environment["FLARE_AGENT_TOKEN"], !token.isEmpty else {
                throw ValidationError("FLARE_AGENT_TOKEN is not set")
            }
            let client = ControlPlaneClient(baseURL: controlPlane, token: token)
            try await client.register(AgentRegisterRequest(
                agentVersion: "0.1.0", pid: getpid(), sshEndpoint: options.listen))
            let config = try await client.config()

            // The state directory holds the host key and snapshot files: the agent's alone.
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
            chmod(stateDir, 0o700)
            let hostKeyPath = (stateDir as NSString).appendingPathComponent("ssh_host_ed25519_key")
            guard FileManager.default.createFile(atPath: hostKeyPath, contents: Data(config.hostPrivateKey.utf8),
                                                 attributes: [.posixPermissions: 0o600])
            else { throw ValidationError("cannot write the host key to \(hostKeyPath)") }
            let environment = try options.environment(home: "/home/flare", templateEnv: config.env)
            for path in [environment.home] + config.persistedPaths {
                try environment.createDirectory(environment.realPath(path))
            }
            let snapshots = SessionSnapshots(client: client, root: options.root, persistedPaths: config.persistedPaths,
                                             stateDirectory: stateDir, owner: environment.user, logger: logger)
            if let latest = config.restoreSnapshot {
                // Before serving: a session must never come up with an empty home in place of its work.
                do {
                    try await snapshots.restore(latest)
                } catch {
                    let reason = "could not restore snapshot \(latest.id): \(error)"
                    logger.error("\(reason)")
                    try? await client.reportFailure(reason)
                    await client.shutdown()
                    throw ExitCode(3)
                }
            }
            let keys = AuthorizedKeys(lines: config.authorizedKeys)
            keys.setRefresher { try await client.config().authorizedKeys }
            let activity = AgentActivity()
            let ssh = try AgentSSHService(
                listen: options.address, hostKeyFile: hostKeyPath, authorizedKeys: keys,
                environment: environment, activity: activity, logger: logger)
            ssh.gracePeriod = .seconds(options.graceSeconds)
            ssh.shutdownHook = { [logger] in
                do {
                    try await snapshots.takeAndUpload(reason: "final snapshot on stop")
                } catch {
                    logger.error("final snapshot failed; the previous one stays the latest", metadata: ["error": "\(error)"])
                }
            }
            let heartbeat = HeartbeatService(
                client: client, activity: activity, authorizedKeys: keys,
                interval: .seconds(config.heartbeatIntervalSeconds), sessionDirectory: stateDir, logger: logger)
            let commands = CommandService(client: client, snapshots: snapshots, logger: logger)
            let group = ServiceGroup(
                services: [ssh, heartbeat, commands], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
            // Only now: the final snapshot's upload used the client during shutdown.
            await client.shutdown()
        }
    }
}
