import FlareContracts
import FlareHTTP
import Gateway
import Foundation
import Hummingbird
import NIOCore
import HummingbirdWebSocket

/// Per-request context: Hummingbird's core storage, the WebSocket upgrade slot, and whoever
/// the auth middlewares found. Routes never read the found caller from here: each authenticated
/// group has its own context type (``UserRequestContext``, ``AgentRequestContext``,
/// ``GatewayLinkRequestContext``) whose caller is not optional, made once after its middleware.
public struct FlareRequestContext: RequestContext, WebSocketRequestContext, GatewayRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<FlareRequestContext>
    /// What the gateway's upgrade check found, for the upgraded handler.
    public let gatewayAuthorization = GatewayAuthorizationBox()
    public let connectionChannel: any Channel
    /// What the auth middlewares found, for the group's own context.
    var authenticated: Authenticated?

    enum Authenticated {
        /// ``UserAuthMiddleware``: the user, their sign-in and the hash of the access token they sent.
        case user(UserRecord, signInId: String?, accessTokenHash: String)
        /// ``AgentAuthMiddleware``: the session whose agent is calling.
        case agent(SessionRecord)
        /// ``GatewayAuthMiddleware``: a standalone gateway with the gateway token.
        case gateway
    }

    /// Responses use the same JSON coding as every other BurstFlare process.
    public var responseEncoder: JSONEncoder { FlareJSON.encoder() }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connectionChannel = source.channel
        webSocket = .init()
    }
}

/// `/api` routes behind ``UserAuthMiddleware``: the signed-in user.
struct UserRequestContext: ChildRequestContext {
    var coreContext: CoreRequestContextStorage
    let user: UserRecord
    /// The user as a service's actor.
    let caller: Caller
    /// The access token's hash, for logout.
    let accessTokenHash: String
    /// The client's address as per-address limits key it.
    let addressKey: String

    init(context: FlareRequestContext) throws {
        guard case .user(let user, let signInId, let hash) = context.authenticated else { throw APIError.unauthorized() }
        coreContext = context.coreContext
        self.user = user
        caller = Caller(user, signInId: signInId, requestId: context.id,
                        address: context.connectionChannel.remoteAddress?.ipAddress ?? "local")
        accessTokenHash = hash
        addressKey = context.clientAddress
    }

    var responseEncoder: JSONEncoder { FlareJSON.encoder() }
}

/// `/agent/v1` routes behind ``AgentAuthMiddleware``: the agent of the channel's one session.
struct AgentRequestContext: ChildRequestContext {
    var coreContext: CoreRequestContextStorage
    let agent: AgentCaller

    init(context: FlareRequestContext) throws {
        guard case .agent(let session) = context.authenticated else {
            throw APIError.unauthorized("unknown agent token", code: "invalid_agent_token")
        }
        coreContext = context.coreContext
        agent = AgentCaller(session: session)
    }

    var responseEncoder: JSONEncoder { FlareJSON.encoder() }
}

/// `/gateway/v1` routes behind ``GatewayAuthMiddleware``: a standalone gateway.
struct GatewayLinkRequestContext: ChildRequestContext {
    var coreContext: CoreRequestContextStorage

    init(context: FlareRequestContext) throws {
        guard case .gateway = context.authenticated else {
            throw APIError.unauthorized("unknown gateway token", code: "invalid_gateway_token")
        }
        coreContext = context.coreContext
    }

    var responseEncoder: JSONEncoder { FlareJSON.encoder() }
}
