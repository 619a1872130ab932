import FlareContracts
import FlareHTTP
import Gateway
import Foundation
import Hummingbird
import NIOCore
import HummingbirdWebSocket

/// Per-request context: Hummingbird's core storage, the WebSocket upgrade slot, and whoever
/// the auth middlewares found.
public struct FlareRequestContext: RequestContext, WebSocketRequestContext, GatewayRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<FlareRequestContext>
    /// What the gateway's upgrade check found, for the upgraded handler.
    public let gatewayAuthorization = GatewayAuthorizationBox()
    public let connectionChannel: any Channel
    /// The signed-in user (set by ``UserAuthMiddleware``).
    var user: UserRecord?
    /// The access token's hash, for logout.
    var accessTokenHash: String?
    /// The session whose agent is calling (set by ``AgentAuthMiddleware``).
    var agentSession: SessionRecord?

    /// Responses use the same JSON coding as every other BurstFlare process.
    public var responseEncoder: JSONEncoder { FlareJSON.encoder() }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connectionChannel = source.channel
        webSocket = .init()
    }

    /// The signed-in user, or 401.
    func requireUser() throws -> UserRecord {
        guard let user else { throw APIError.unauthorized() }
        return user
    }

    /// The signed-in user as a service's actor, or 401.
    func actor() throws -> Caller {
        Caller(try requireUser())
    }
}
