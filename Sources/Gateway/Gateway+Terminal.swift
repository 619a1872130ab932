import FlareContracts
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket

extension Gateway {
    /// Bridges a browser terminal: `?terminal=ID` reattaches to a shell kept since its client left
    /// (replaying recent output), otherwise a new login shell starts at `?cols=&rows=`.
    func bridgeTerminal(_ authorized: GatewayAuthorization, terminals: TerminalBridge, request: Request,
                        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
                        logger: Logger) async throws {
        let query = request.uri.queryParameters
        let cols = Self.dimension(query["cols"], default: 80)
        let rows = Self.dimension(query["rows"], default: 24)
        let shell: TerminalShell
        var resumed = false
        if let id = query["terminal"].map(String.init), let kept = terminals.shell(id: id, for: authorized.claims) {
            shell = kept
            resumed = true
            shell.resize(cols: cols, rows: rows)
        } else {
            do {
                shell = try await terminals.open(authorized, cols: cols, rows: rows)
            } catch {
                logger.warning("terminal could not start", metadata: [
                    "session.id": "\(authorized.claims.sessionId)", "error": "\(error)",
                ])
                try await outbound.sendClose(.unexpectedServerError, reason: "the terminal could not start: \(error)")
                return
            }
        }
        metrics.connectLatency.recordNanoseconds((ContinuousClock.now - authorized.started).nanoseconds)
        try await outbound.write(.text(TerminalMessage.ready(terminal: shell.id, resumed: resumed).json))

        let ending = NIOLockedValueBox<RelayEnding?>(nil)
        let (attachment, events) = shell.attach()
        let lastActivity = NIOLockedValueBox(ContinuousClock.now)
        // Ends this connection whatever the shell's thread is doing (it may be stuck writing to a
        // session that does not read).
        let (ended, end) = AsyncStream<Never>.makeStream()
        let registration = connections.register(authorized.claims, lastActivity: lastActivity) { reason in
            ending.withLockedValue { $0 = $0 ?? reason }
            if case .revoked = reason { shell.terminate() } else { shell.detach(attachment) }
            end.finish()
        }
        defer { connections.unregister(registration) }
        let open = metrics.open(.terminal)
        open.increment()
        defer { open.decrement() }
        let (toAgentCounter, fromAgentCounter) = (metrics.bytesToAgent, metrics.bytesFromAgent)

        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await frame in inbound {
                    lastActivity.withLockedValue { $0 = .now }
                    toAgentCounter.increment(by: Int64(frame.data.readableBytes))
                    switch frame.opcode {
                    case .text:
                        // Unknown or malformed messages, and ones only the gateway sends, are ignored.
                        switch try? JSONDecoder().decode(TerminalMessage.self, from: Data(buffer: frame.data)) {
                        case .resize(let cols, let rows):
                            shell.resize(cols: Self.dimension(cols), rows: Self.dimension(rows))
                        case .input(let text):
                            guard shell.input(Array(text.utf8)) else { return ending.withLockedValue { $0 = $0 ?? .inputBacklog } }
                        case .ready, .exit, nil:
                            continue
                        }
                    default:
                        guard shell.input(Array(buffer: frame.data)) else { return ending.withLockedValue { $0 = $0 ?? .inputBacklog } }
                    }
                }
            }
            group.addTask {
                for await _ in ended {}
            }
            group.addTask {
                for await event in events {
                    switch event {
                    case .output(let bytes):
                        lastActivity.withLockedValue { $0 = .now }
                        fromAgentCounter.increment(by: Int64(bytes.readableBytes))
                        try await outbound.write(.binary(bytes))
                        shell.written(bytes.readableBytes)
                    case .exit(let status):
                        try await outbound.write(.text(TerminalMessage.exit(status: status).json))
                    }
                }
            }
            _ = try? await group.next()
            group.cancelAll()
        }
        // The client left but the shell lives on: keep it for a reconnect.
        shell.detach(attachment)
        if let ending = ending.withLockedValue({ $0 }) {
            try? await outbound.sendClose(ending.closeCode, reason: ending.reason)
        }
    }

    static func dimension(_ text: Substring?, default value: Int) -> Int {
        text.flatMap { Int($0) }.map(dimension) ?? value
    }

    static func dimension(_ value: Int) -> Int {
        min(max(value, 1), 1000)
    }
}
