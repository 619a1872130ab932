import FlareContracts
import Foundation
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOWebSocket

extension Gateway {
    /// Relays binary frames to the agent and the agent's bytes back as binary frames, until either
    /// side closes, access is revoked, or nothing moves for ``idleTimeout``.
    ///
    /// Each direction waits for the other side to take data before reading more, so a slow reader
    /// holds the agent back instead of filling the gateway's memory.
    func relay(_ authorized: GatewayAuthorization, inbound: WebSocketInboundStream,
               outbound: WebSocketOutboundWriter, logger: Logger) async throws {
        let agent: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            agent = try await Self.connect(to: authorized.session.endpoint)
        } catch {
            logger.warning("agent unreachable", metadata: ["session.id": "\(authorized.claims.sessionId)",
                                                           "error": "\(error)"])
            try await outbound.sendClose(.unexpectedServerError, reason: "the session's agent is not reachable")
            return
        }
        metrics.connectLatency.recordNanoseconds((ContinuousClock.now - authorized.started).nanoseconds)
        let ending = NIOLockedValueBox<RelayEnding?>(nil)
        let channel = agent.channel
        let registration = connections.register(authorized.claims) { revocation in
            ending.withLockedValue { $0 = $0 ?? .revoked(revocation.reason) }
            channel.close(promise: nil)
        }
        defer { connections.unregister(registration) }
        let open = metrics.open(.ssh)
        open.increment()
        defer { open.decrement() }
        let lastActivity = NIOLockedValueBox(ContinuousClock.now)
        let (toAgentCounter, fromAgentCounter) = (metrics.bytesToAgent, metrics.bytesFromAgent)
        let idleTimeout = self.idleTimeout

        try await agent.executeThenClose { fromAgent, toAgent in
            await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await frame in inbound where frame.opcode != .text {
                        lastActivity.withLockedValue { $0 = .now }
                        toAgentCounter.increment(by: Int64(frame.data.readableBytes))
                        try await toAgent.write(frame.data)
                    }
                }
                group.addTask {
                    for try await bytes in fromAgent {
                        lastActivity.withLockedValue { $0 = .now }
                        fromAgentCounter.increment(by: Int64(bytes.readableBytes))
                        try await outbound.write(.binary(bytes))
                    }
                }
                group.addTask {
                    try await Self.watchIdle(lastActivity, timeout: idleTimeout) {
                        ending.withLockedValue { $0 = $0 ?? .idle(idleTimeout) }
                        channel.close(promise: nil)
                    }
                }
                // Whichever side ends first ends the relay; closing the agent socket and returning
                // (which closes the WebSocket) tells the other side.
                _ = try? await group.next()
                group.cancelAll()
            }
        }
        if let ending = ending.withLockedValue({ $0 }) {
            logger.info("relay closed", metadata: ["session.id": "\(authorized.claims.sessionId)",
                                                   "reason": "\(ending.reason)"])
            try? await outbound.sendClose(ending.closeCode, reason: ending.reason)
        }
    }

    static func connect(to endpoint: AgentEndpoint) async throws -> NIOAsyncChannel<ByteBuffer, ByteBuffer> {
        guard case .unix(let path) = endpoint else { throw ChannelError.connectPending }
        return try await ClientBootstrap(group: NIOSingletons.posixEventLoopGroup)
            // Large reads: NIO's default starts at 2 KiB, which costs bulk transfers a lot of wakeups.
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 16 * 1024, initial: 64 * 1024, maximum: 512 * 1024))
            .connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Returns (after calling `expire`) once nothing has moved for `timeout`.
    static func watchIdle(_ lastActivity: NIOLockedValueBox<ContinuousClock.Instant>, timeout: Duration,
                          expire: () -> Void) async throws {
        while true {
            let idle = ContinuousClock.now - lastActivity.withLockedValue { $0 }
            if idle >= timeout {
                expire()
                return
            }
            try await Task.sleep(for: timeout - idle)
        }
    }
}

/// Why the gateway, not a peer, ended a connection; becomes the WebSocket close frame.
enum RelayEnding: Sendable {
    case revoked(String)
    case idle(Duration)

    var closeCode: WebSocketErrorCode {
        switch self {
        case .revoked: .policyViolation
        case .idle: .unknown(4000)
        }
    }

    var reason: String {
        switch self {
        case .revoked(let reason): "access revoked: \(reason)"
        case .idle(let timeout): "closed after \(timeout.components.seconds) s without traffic"
        }
    }
}
