import ArgumentParser
import FlareClient
import FlareContracts
import FlareSystem
import Foundation
import NIOCore
import NIOPosix

extension Flare {
    struct SSHProxy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh-proxy",
            abstract: "Carry an SSH connection to a session over the gateway (an OpenSSH ProxyCommand).",
            discussion: "Example: ssh -o ProxyCommand='flare ssh-proxy dev' flare@dev.flare")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id (NAME.flare as ssh passes it works too).")
        var session: String

        func run() async throws {
            let client = try await global.authenticatedClient()
            let session = self.session.hasSuffix(".flare") ? String(self.session.dropLast(6)) : self.session
            let info: SessionInfo
            do {
                info = try await client.call(Endpoints.Sessions.get.at(session))
            } catch let error as FlareClientError where error.status == 404 {
                throw CLIError("session \(session) does not exist (it may have been deleted)")
            }
            try requireReachable(info)
            if info.state != .running {
                printStatus("waking \(info.name)…")
            }
            let token = try await client.call(Endpoints.Sessions.runtimeToken.at(info.id), RuntimeTokenRequest(purpose: .ssh))
            let gateway = global.resolvedGatewayURL
            let path = Endpoints.Gateway.ssh.at(info.id).path
            let connection: GatewayConnection
            do {
                connection = try await GatewayConnection.connect(url: webSocketURL(gateway) + path, token: token.token)
            } catch is GatewayConnection.Refused {
                throw await GatewayRefusal.explain(gateway: gateway, path: path, token: token.token, session: info.name)
            } catch let error as CLIError {
                throw error
            } catch {
                throw GatewayRefusal.unreachable(gateway, error)
            }
            // ssh's pipes to us hold 64 KiB by default; 1 MiB lets each read take more.
            Descriptors.setPipeSize(0, 1 << 20)
            Descriptors.setPipeSize(1, 1 << 20)
            let close = try await connection.relayStandardIO()
            if let close, close.code != .normalClosure {
                throw CLIError(GatewayRefusal.explain(close, session: info.name))
            }
        }
    }
}

/// `http://host` → `ws://host`, `https://host` → `wss://host`.
func webSocketURL(_ httpURL: String) -> String {
    if httpURL.hasPrefix("https://") { return "wss://" + httpURL.dropFirst(8) }
    if httpURL.hasPrefix("http://") { return "ws://" + httpURL.dropFirst(7) }
    return httpURL
}
