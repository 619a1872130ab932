import Agent
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

@main
struct FlareAgent: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flare-agent",
        abstract: "The BurstFlare session agent: an SSH server (libssh) and snapshot tool.",
        subcommands: [Serve.self, Run.self, SnapshotCommand.self, SFTPServerCommand.self])
}

extension FlareAgent {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve SSH with no control plane (tests, benchmarks, debugging).",
            discussion: """
                Example:
                  flare-agent serve --listen unix:/tmp/agent.sock --host-key key --authorized-keys ~/.ssh/id_ed25519.pub
                  ssh -o ProxyCommand='socat - UNIX-CONNECT:/tmp/agent.sock' x
                """)

        @OptionGroup var session: SessionOptions
        @Option(help: "Private host key file (ed25519).")
        var hostKey: String
        @Option(help: "authorized_keys file of the keys allowed in.")
        var authorizedKeys: String
        @Option(help: "Write the bound address to this file once listening (for scripts using port 0).")
        var addressFile: String?

        func run() async throws {
            LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
            let logger = Logger(label: "flare-agent")
            let keys = try AuthorizedKeys(file: authorizedKeys)
            let service = try AgentSSHService(
                listen: session.address, hostKeyFile: hostKey, authorizedKeys: keys,
                environment: try session.environment(), logger: logger)
            service.gracePeriod = .seconds(session.graceSeconds)
            if let addressFile {
                try "\(service.address)\n".write(toFile: addressFile, atomically: true, encoding: .utf8)
            }
            let group = ServiceGroup(
                services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        }
    }
}

extension FlareAgent {
    struct SFTPServerCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sftp-server",
            abstract: "An SFTP v3 server on stdin/stdout (the agent's own, for images without one).")

        func run() throws {
            SFTPServer().run()
        }
    }
}
