import ArgumentParser
import FlareContracts
import Foundation
import HummingbirdWSClient
import Logging
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
            let client = try global.authenticatedClient()
            let session = self.session.hasSuffix(".flare") ? String(self.session.dropLast(6)) : self.session
            let info: SessionInfo
            do {
                info = try await client.get("/api/sessions/\(escaped(session))")
            } catch let error as APIClient.ServerError where error.status == 404 {
                throw CLIError("session \(session) does not exist (it may have been deleted)")
            }
            try requireReachable(info)
            if info.state != .running {
                printStatus("waking \(info.name)…")
            }
            let token: RuntimeTokenResponse = try await client.post(
                "/api/sessions/\(escaped(info.id))/runtime-token", RuntimeTokenRequest(purpose: .ssh))
            let gateway = global.resolvedGatewayURL
            let path = "/gateway/ssh/\(escaped(info.id))"
            let close: WebSocketCloseFrame?
            do {
                close = try await relay(url: webSocketURL(gateway) + path, token: token.token)
            } catch let error as WebSocketClientError {
                throw await GatewayRefusal.explain(gateway: gateway, path: path, token: token.token,
                                                   session: info.name, error: error)
            }
            if let close, close.closeCode != .normalClosure {
                throw CLIError(GatewayRefusal.explain(close, session: info.name))
            }
        }

        /// Copies stdin to the WebSocket as binary frames and frames back to stdout until either ends.
        private func relay(url: String, token: String) async throws -> WebSocketCloseFrame? {
            var logger = Logger(label: "flare-ssh-proxy")
            logger.logLevel = .critical
            // Large reads mean few, large WebSocket frames: per-frame costs dominate bulk transfers.
            let stdio = try await NIOPipeBootstrap(group: NIOSingletons.posixEventLoopGroup)
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                    minimum: 16 * 1024, initial: 64 * 1024, maximum: 512 * 1024))
                .takingOwnershipOfDescriptors(input: dup(0), output: dup(1)) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let configuration = WebSocketClientConfiguration(
                maxFrameSize: 1 << 20, additionalHeaders: [.authorization: "Bearer \(token)"],
                autoPing: .enabled(timePeriod: .seconds(20)))
            return try await stdio.executeThenClose { input, output in
                try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) {
                    inbound, outbound, _ in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await bytes in input { try await outbound.write(.binary(bytes)) }
                        }
                        group.addTask {
                            for try await frame in inbound { try await output.write(frame.data) }
                        }
                        _ = try await group.next()
                        group.cancelAll()
                    }
                }
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
