import FlareContracts
import FlareSystem
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
               outbound: WebSocketOutboundWriter, eventLoop: any EventLoop, logger: Logger) async throws {
        let agent: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            agent = try await Self.connect(to: authorized.session.endpoint, on: eventLoop)
        } catch {
            logger.warning("agent unreachable", metadata: ["session.id": "\(authorized.claims.sessionId)",
                                                           "error": "\(error)"])
            try await outbound.sendClose(.unexpectedServerError, reason: "the session's agent is not reachable")
            return
        }
        metrics.connectLatency.recordNanoseconds((ContinuousClock.now - authorized.started).nanoseconds)
        let ending = NIOLockedValueBox<RelayEnding?>(nil)
        let channel = agent.channel
        let lastActivity = NIOLockedValueBox(ContinuousClock.now)
        let registration = connections.register(authorized.claims, lastActivity: lastActivity) { reason in
            ending.withLockedValue { $0 = $0 ?? reason }
            channel.close(promise: nil)
        }
        defer { connections.unregister(registration) }
        let open = metrics.open(.ssh)
        open.increment()
        defer { open.decrement() }
        let (toAgentCounter, fromAgentCounter) = (metrics.bytesToAgent, metrics.bytesFromAgent)

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

    /// Connects on the client connection's event loop, so relayed bytes never cross threads in NIO.
    static func connect(to endpoint: AgentEndpoint, on eventLoop: any EventLoop) async throws
        -> NIOAsyncChannel<ByteBuffer, ByteBuffer>
    {
        let socket = try UnixSocket.connect(path: endpoint.socketPath, what: "the agent's socket")
        // NIO owns the descriptor from here on (and closes it, on failure too).
        return try await ClientBootstrap(group: eventLoop)
            // Small first reads keep idle connections cheap (a buffer is allocated per read); bulk
            // transfers grow reads to 512 KiB within two reads (NIO's default stops at 64 KiB, which
            // costs bulk transfers many wakeups).
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 1024, initial: 2048, maximum: 512 * 1024))
            .withConnectedSocket(socket) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Closes relays idle for longer than ``idleTimeout``, checking a few times per timeout, until
    /// cancelled. One sweep for all connections costs less than a timer task each.
    public func runIdleSweep() async {
        let period = min(idleTimeout / 4, .seconds(30))
        while !Task.isCancelled {
            try? await Task.sleep(for: period)
            connections.closeIdle(timeout: idleTimeout)
        }
    }
}

/// Why the gateway, not a peer, ended a connection; becomes the WebSocket close frame.
enum RelayEnding: Sendable, Equatable {
    case revoked(String)
    case idle(Duration)
    /// A terminal client sent more input than its shell has taken (a session not reading it).
    case inputBacklog

    var closeCode: WebSocketErrorCode {
        switch self {
        case .revoked: .policyViolation
        case .idle: .unknown(4000)
        case .inputBacklog: .messageTooLarge
        }
    }

    var reason: String {
        switch self {
        case .revoked(let reason): "access revoked: \(reason)"
        case .idle(let timeout): "closed after \(timeout.components.seconds) s without traffic"
        case .inputBacklog: "the session is not reading its terminal input"
        }
    }
}
