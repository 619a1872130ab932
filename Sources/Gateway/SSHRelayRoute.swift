import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix

/// The gateway: WebSocket endpoints that check runtime tokens before upgrading and relay bytes
/// to the session's agent.
public struct Gateway: Sendable {
    /// Largest WebSocket frame accepted or sent.
    public static let maxFrameSize = 1 << 20
    let verifier: RuntimeTokenVerifier
    let backend: any GatewayBackend
    /// Open relays, for revocation.
    public let connections: LiveConnections

    public init(verifier: RuntimeTokenVerifier, backend: any GatewayBackend, connections: LiveConnections = .init()) {
        self.verifier = verifier
        self.backend = backend
        self.connections = connections
    }

    /// Adds `GET /gateway/ssh/{session}`: a WebSocket carrying the raw SSH byte stream.
    public func addRoutes<Context: WebSocketRequestContext>(to router: Router<Context>) {
        router.ws("/gateway/ssh/{session}") { request, context in
            _ = try await self.authorize(request, context: context, purpose: .ssh)
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let (claims, endpoint) = try await self.authorizeClaims(context.request, context: context.requestContext,
                                                                    purpose: .ssh)
            try await Self.relay(inbound: inbound, outbound: outbound, to: endpoint, logger: context.logger) { close in
                self.connections.register(claims, close: close)
            } unregister: { self.connections.unregister($0) }
        }
    }

    /// Checks signature, expiry, session and purpose, then live state with the backend.
    func authorize(_ request: Request, context: some RequestContext, purpose: RuntimeTokenPurpose) async throws
        -> AgentEndpoint
    {
        try await authorizeClaims(request, context: context, purpose: purpose).1
    }

    func authorizeClaims(_ request: Request, context: some RequestContext, purpose: RuntimeTokenPurpose)
        async throws -> (RuntimeTokenClaims, AgentEndpoint)
    {
        guard let sessionId = context.parameters.get("session") else { throw APIError.notFound("session") }
        guard let token = Self.token(in: request) else {
            throw APIError.unauthorized("a runtime token is required (Authorization: Bearer or ?token=)",
                                        code: "token_missing")
        }
        let claims: RuntimeTokenClaims
        do {
            claims = try verifier.verify(token, sessionId: sessionId, purpose: purpose)
        } catch {
            context.logger.notice("runtime token refused", metadata: ["session.id": "\(sessionId)",
                                                                      "auth.reason": "\(error.code)"])
            throw error.isAuthenticationFailure
                ? APIError.unauthorized(error.description, code: error.code)
                : APIError.forbidden(error.description, code: error.code)
        }
        return (claims, try await backend.resolve(claims))
    }

    static func token(in request: Request) -> String? {
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            return String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        return request.uri.queryParameters["token"].map(String.init)
    }

    /// Relays binary frames to the agent and the agent's bytes back as binary frames, until either
    /// side closes. Each direction waits for the other side to take data (backpressure).
    static func relay(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, to endpoint: AgentEndpoint,
        logger: Logger, register: (@escaping @Sendable () -> Void) -> UUID, unregister: (UUID) -> Void
    ) async throws {
        guard case .unix(let path) = endpoint else { return }
        let agent = try await ClientBootstrap(group: NIOSingletons.posixEventLoopGroup)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(
                minimum: 16 * 1024, initial: 64 * 1024, maximum: 512 * 1024))
            .connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        // Closing the agent side ends both directions and then the WebSocket.
        let channel = agent.channel
        let registration = register { channel.close(promise: nil) }
        defer { unregister(registration) }
        try await agent.executeThenClose { fromAgent, toAgent in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    for try await frame in inbound where frame.opcode != .text {
                        try await toAgent.write(frame.data)
                    }
                }
                group.addTask {
                    for try await bytes in fromAgent {
                        try await outbound.write(.binary(bytes))
                    }
                }
                // Whichever side ends first ends the relay; closing the agent socket and returning
                // (which closes the WebSocket) tells the other side.
                _ = try await group.next()
                group.cancelAll()
            }
        }
    }
}
