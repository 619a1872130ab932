import FlareHTTP
import Foundation
import Hummingbird

/// Requires `Authorization: Bearer <access token>` and puts the user in the context (read by
/// ``UserRequestContext``).
struct UserAuthMiddleware: RouterMiddleware {
    typealias Context = FlareRequestContext
    let store: Store

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let token = request.bearerToken else {
            throw APIError.unauthorized("sign in first: no access token was sent")
        }
        let hash = SessionLifecycle.hash(token)
        guard let signedIn = try await store.signedIn(accessTokenHash: hash, now: Date()) else {
            throw APIError.unauthorized("the access token is invalid or expired; refresh it or sign in again",
                                        code: "invalid_token")
        }
        var context = context
        context.authenticated = .user(signedIn.user, signInId: signedIn.signInId, accessTokenHash: hash)
        context.logger[metadataKey: "user.id"] = "\(signedIn.user.id)"
        return try await next(request, context)
    }
}

/// Requires the per-session agent token of the session the channel is bound to, and puts that
/// session in the context (read by ``AgentRequestContext``).
struct AgentAuthMiddleware: RouterMiddleware {
    typealias Context = FlareRequestContext
    let store: Store
    /// The only session this channel serves.
    let boundSession: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let token = request.bearerToken,
              let session = try await store.session(agentTokenHash: SessionLifecycle.hash(token)),
              session.id == boundSession
        else { throw APIError.unauthorized("unknown agent token", code: "invalid_agent_token") }
        var context = context
        context.authenticated = .agent(session)
        context.logger[metadataKey: "session.id"] = "\(session.id)"
        return try await next(request, context)
    }
}

/// Requires the gateway token (the `gateway-token` file in the data directory) on the routes
/// standalone gateways use.
struct GatewayAuthMiddleware: RouterMiddleware {
    typealias Context = FlareRequestContext
    /// SHA-256 of the gateway token, compared in constant time.
    let tokenHash: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard let token = request.bearerToken,
              constantTimeEqual(SessionLifecycle.hash(token), tokenHash)
        else { throw APIError.unauthorized("unknown gateway token", code: "invalid_gateway_token") }
        var context = context
        context.authenticated = .gateway
        return try await next(request, context)
    }
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let (x, y) = (Array(a.utf8), Array(b.utf8))
    guard x.count == y.count else { return false }
    return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
}

/// Records a signed-in user's refused or failed change (any method but GET and HEAD) in the audit
/// log, with its status, the request id the client was given and its address. Rate-limit refusals
/// are not recorded (a flood would turn each into a write).
struct RefusedChangeAudit: RouterMiddleware {
    typealias Context = FlareRequestContext
    let store: Store
    /// Refusals recorded per account: past it a flood of refused calls writes nothing more.
    let limiter = RateLimiter(.init(limit: 60, period: 60))

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch {
            guard request.method != .get, request.method != .head,
                  case .user(let user, _, _) = context.authenticated
            else { throw error }
            let reported = APIError.reported(error)
            let status = Int(reported?.status.code ?? 500)
            guard status != 429, limiter.take(user.id).allowed else { throw error }
            let outcome = status >= 500 ? "failed" : "refused"
            try? await store.audit(
                userId: user.id, action: "request.\(outcome)", target: "\(request.method) \(request.uri.path.prefix(200))",
                detail: "\(status) \(reported?.code ?? "internal")", outcome: outcome, requestId: context.id,
                address: context.connectionChannel.remoteAddress?.ipAddress ?? "local")
            throw error
        }
    }
}
