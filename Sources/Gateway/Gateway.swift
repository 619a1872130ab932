import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket

/// The gateway: WebSocket endpoints that check runtime tokens before upgrading, then relay the
/// SSH byte stream (`/gateway/ssh/{session}`) or bridge a browser terminal
/// (`/gateway/terminal/{session}`) to the session's agent.
///
/// Embedded in flare-server, or run alone as flare-gateway; the ``GatewayBackend`` is the difference.
public struct Gateway: Sendable {
    /// Largest WebSocket frame accepted or sent.
    public static let maxFrameSize = 1 << 20
    /// How often the server pings each WebSocket; a peer that misses a pong for as long is closed.
    public static let pingInterval: Duration = .seconds(20)

    public let verifier: RuntimeTokenVerifier
    let backend: any GatewayBackend
    /// Open relays, for revocation.
    public let connections: LiveConnections
    let metrics: GatewayMetrics
    /// A relay with no bytes either way for this long is closed.
    let idleTimeout: Duration
    /// Logs in to agents for browser terminals; nil disables `/gateway/terminal`.
    let terminals: TerminalBridge?

    public init(verifier: RuntimeTokenVerifier, backend: any GatewayBackend, connections: LiveConnections = .init(),
                metrics: GatewayMetrics, idleTimeout: Duration = .seconds(3600), terminals: TerminalBridge? = nil) {
        self.verifier = verifier
        self.backend = backend
        self.connections = connections
        self.metrics = metrics
        self.idleTimeout = idleTimeout
        self.terminals = terminals
    }

    /// The WebSocket server settings every gateway uses: frame limit and pings.
    public static var webSocketConfiguration: WebSocketServerConfiguration {
        .init(maxFrameSize: maxFrameSize, extensions: [.nonNegotiatedExtension { FastUnmaskExtension() }],
              autoPing: .enabled(timePeriod: pingInterval))
    }

    /// Adds `GET /gateway/ssh/{session}` and `GET /gateway/terminal/{session}`.
    public func addRoutes<Context: GatewayRequestContext>(to router: Router<Context>) {
        router.ws(RouterPath(Endpoints.Gateway.ssh.template)) { request, context in
            context.gatewayAuthorization.value = try await self.refusingReadably(
                request, channel: context.connectionChannel, id: context.id
            ) { try await self.authorize(request, context: context, purpose: .ssh) }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let authorized = context.requestContext.gatewayAuthorization.value else { return }
            // Bulk uploads arrive in frames of up to 512 KiB: read the socket in chunks that size
            // (NIO's default stops at 64 KiB, so frames were reassembled from many reads).
            try? await context.requestContext.connectionChannel.setOption(
                .recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 1024, initial: 2048, maximum: 512 * 1024))
            try await self.relay(authorized, inbound: inbound, outbound: outbound,
                                 eventLoop: context.requestContext.connectionChannel.eventLoop, logger: context.logger)
        }
        guard let terminals else { return }
        router.ws(RouterPath(Endpoints.Gateway.terminal.template)) { request, context in
            context.gatewayAuthorization.value = try await self.refusingReadably(
                request, channel: context.connectionChannel, id: context.id
            ) { try await self.authorize(request, context: context, purpose: .terminal) }
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            guard let authorized = context.requestContext.gatewayAuthorization.value else { return }
            try await self.bridgeTerminal(authorized, terminals: terminals, request: context.request,
                                          inbound: inbound, outbound: outbound, logger: context.logger)
        }
    }

    /// Checks signature, expiry, session and purpose, then live state with the backend (which wakes
    /// a sleeping session). Refusals are 401/403/404/409 before any upgrade.
    func authorize(_ request: Request, context: some RequestContext, purpose: RuntimeTokenPurpose) async throws
        -> GatewayAuthorization
    {
        let started = ContinuousClock.now
        guard let sessionId = context.parameters.get("session") else { throw APIError.notFound("session") }
        guard let token = Self.token(in: request) else {
            metrics.authorizationFailed("token_missing")
            throw APIError.unauthorized("a runtime token is required (Authorization: Bearer or ?token=)",
                                        code: "token_missing")
        }
        let claims: RuntimeTokenClaims
        do {
            claims = try verifier.verify(token, sessionId: sessionId, purpose: purpose)
        } catch {
            context.logger.notice("runtime token refused", metadata: ["session.id": "\(sessionId)",
                                                                      "auth.reason": "\(error.code)"])
            metrics.authorizationFailed(error.code)
            throw error.isAuthenticationFailure
                ? APIError.unauthorized(error.description, code: error.code)
                : APIError.forbidden(error.description, code: error.code)
        }
        let session: ResolvedSession
        do {
            session = try await backend.resolve(claims, token: token)
        } catch {
            if let refusal = APIError.reported(error) { metrics.authorizationFailed(refusal.code) }
            throw error
        }
        if let wake = session.wakeDuration { metrics.wakeLatency.recordNanoseconds(wake.nanoseconds) }
        return GatewayAuthorization(claims: claims, session: session, started: started)
    }

    static func token(in request: Request) -> String? {
        request.bearerToken ?? request.uri.queryParameters["token"].map(String.init)
    }
}

/// A connection that passed every check, carried from the upgrade decision to the upgraded handler.
public struct GatewayAuthorization: Sendable {
    public let claims: RuntimeTokenClaims
    public let session: ResolvedSession
    /// When the request arrived, for the connect-latency histogram.
    let started: ContinuousClock.Instant
}

/// Holds the authorization of one upgrade request (a reference, so the upgraded handler sees
/// what the upgrade decision stored).
public final class GatewayAuthorizationBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: GatewayAuthorization?

    public init() {}

    public var value: GatewayAuthorization? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// A request context the gateway's routes can use.
public protocol GatewayRequestContext: WebSocketRequestContext, RequestContext {
    var gatewayAuthorization: GatewayAuthorizationBox { get }
    /// The client's connection (from the context source), to tune reads once it is a relay.
    var connectionChannel: any Channel { get }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension WebSocketOutboundWriter {
    /// Sends a close frame with a code and a reason the client can show (e.g. 1008 "access revoked").
    func sendClose(_ code: WebSocketErrorCode, reason: String) async throws {
        var buffer = ByteBufferAllocator().buffer(capacity: 2 + reason.utf8.count)
        buffer.write(webSocketErrorCode: code)
        buffer.writeString(String(reason.utf8.prefix(120)) ?? "")
        try await write(.custom(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)))
    }
}

extension Gateway {
    /// Takes access away now: closes matching relays and terminals (detached ones included);
    /// returns how many connections it closed.
    @discardableResult
    public func revoke(_ revocation: Revocation) -> Int {
        // Connections first: ending a shell ends its attached connection, which would then no
        // longer be counted nor closed with the revocation's reason.
        let closed = connections.close(revocation)
        terminals?.close(revocation)
        return closed
    }
}
