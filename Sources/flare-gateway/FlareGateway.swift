import ArgumentParser
import FlareContracts
import Foundation
import Gateway
import Logging
import ServiceLifecycle

@main
struct FlareGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flare-gateway",
        abstract: "A standalone BurstFlare gateway: SSH over WebSocket and browser terminals.",
        discussion: """
            Runs the same gateway flare-server embeds, as its own process. It needs the control
            plane's URL and its gateway token (the file `gateway-token` in the server's data
            directory). Point clients at it with FLARE_GATEWAY_URL.

            Example:
              FLARE_GATEWAY_TOKEN=$(cat .flare/gateway-token) \\
                flare-gateway --control-plane http://127.0.0.1:8787 --port 8788

            Agents trust every registered gateway's service key for browser terminals; list them
            with --list-keys and retire one with --remove-key SHA256:….
            """)

    @Flag(help: "List the gateways' service keys registered with the control plane, and exit.")
    var listKeys = false
    @Option(help: "Remove the registered service key with this fingerprint (SHA256:…), and exit.")
    var removeKey: String?

    @Option(help: "The control plane's URL (env FLARE_CONTROL_PLANE).")
    var controlPlane: String = ProcessInfo.processInfo.environment["FLARE_CONTROL_PLANE"] ?? "http://127.0.0.1:8787"
    @Option(help: "File holding the gateway token (default: env FLARE_GATEWAY_TOKEN).")
    var tokenFile: String?
    @Option(help: "Address to listen on.")
    var host: String = "127.0.0.1"
    @Option(help: "Port to listen on; 0 picks a free one.")
    var port: Int = 8788
    @Option(help: "Directory for the gateway's service key.")
    var dataDir: String = "./.flare-gateway"
    @Option(help: "Name the control plane logs for this gateway.")
    var name: String = "flare-gateway"
    @Option(help: "Write the bound port to this file once listening.")
    var portFile: String?
    @Option(help: "Close SSH and terminal connections after this many seconds without traffic.")
    var idleConnectionSeconds: Int = 3600

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0-65535") }
        guard URL(string: controlPlane)?.scheme?.hasPrefix("http") == true else {
            throw ValidationError("--control-plane must be an http(s) URL, e.g. http://127.0.0.1:8787")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["FLARE_LOG_LEVEL"]
                .flatMap { Logger.Level(rawValue: $0) } ?? .info
            return handler
        }
        let token: String
        if let tokenFile {
            guard let text = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
                throw ValidationError("cannot read the gateway token from \(tokenFile)")
            }
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let text = ProcessInfo.processInfo.environment["FLARE_GATEWAY_TOKEN"] {
            token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        } else {
            throw ValidationError("the gateway token is required: --token-file PATH or FLARE_GATEWAY_TOKEN")
        }
        if listKeys || removeKey != nil {
            let link = ControlPlaneLink(baseURL: controlPlane, gatewayToken: token, streamClient: .shared,
                                        logger: Logger(label: "flare-gateway"))
            if let removeKey {
                try await link.removeKey(fingerprint: removeKey)
                print("Removed \(removeKey); agents stop trusting it at their next heartbeat.")
            } else {
                let formatter = ISO8601DateFormatter()
                print("NAME".padding(toLength: 24, withPad: " ", startingAt: 0) + "FINGERPRINT".padding(
                    toLength: 54, withPad: " ", startingAt: 0) + "REGISTERED")
                for key in try await link.keys() {
                    print(key.name.padding(toLength: 24, withPad: " ", startingAt: 0)
                        + key.fingerprint.padding(toLength: 54, withPad: " ", startingAt: 0)
                        + formatter.string(from: key.registeredAt))
                }
            }
            return
        }
        var configuration = GatewayServer.Configuration(
            controlPlaneURL: controlPlane, gatewayToken: token,
            dataDirectory: URL(fileURLWithPath: dataDir).standardizedFileURL)
        configuration.host = host
        configuration.port = port
        configuration.idleTimeout = .seconds(max(1, idleConnectionSeconds))
        configuration.name = name
        let (host, portFile) = (self.host, self.portFile)
        let logger = Logger(label: "flare-gateway")
        let server = GatewayServer(configuration: configuration, logger: logger) { port in
            FileHandle.standardOutput.write(Data("flare-gateway listening on http://\(host):\(port)\n".utf8))
            if let portFile { try? "\(port)\n".write(toFile: portFile, atomically: true, encoding: .utf8) }
        }
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
