import FlareContracts
import Foundation
import Hummingbird

/// Sign-up and sign-in: adapters over ``AccountService``, behind the per-address and
/// per-account rate limits (429 past them). The per-address limit is checked before the body is read.
extension ControlPlaneAPI {
    func addAuthRoutes(to router: Router<FlareRequestContext>) {
        router.group().add(middleware: AddressRateLimit(limiter: rateLimits.registerByAddress, what: "sign-ups from this address"))
            .on(Endpoints.Auth.register) { request, context, credentials in
                .created(try await accounts.register(credentials, from: context.clientInfo(request)))
            }

        router.group().add(middleware: AddressRateLimit(limiter: rateLimits.loginByAddress, what: "sign-in attempts from this address"))
            .on(Endpoints.Auth.login) { request, context, credentials in
                try rateLimits.loginByAccount.take(AccountService.normalized(credentials.email))
                    .enforce("sign-in attempts for this account")
                return .ok(try await accounts.login(credentials, from: context.clientInfo(request)))
            }

        let device = router.group().add(middleware: AddressRateLimit(limiter: rateLimits.deviceByAddress,
                                                                     what: "device sign-in requests from this address"))
        device.on(Endpoints.Auth.deviceAuthorization) { request, context, _ in
            let host = request.head.authority ?? "127.0.0.1"
            return .ok(try await accounts.startDeviceSignIn(from: context.clientInfo(request), origin: "http://\(host)"))
        }
        device.on(Endpoints.Auth.deviceToken) { _, _, body in
            .ok(try await accounts.pollDeviceSignIn(body))
        }

        router.group().add(middleware: AddressRateLimit(limiter: rateLimits.refreshByAddress, what: "token refreshes from this address"))
            .on(Endpoints.Auth.refresh) { request, context, body in
                .ok(try await accounts.refresh(body, from: context.clientInfo(request)))
            }
    }
}

/// Refuses (429) a client address past its limit, before the route reads anything.
struct AddressRateLimit: RouterMiddleware {
    let limiter: RateLimiter
    let what: String

    func handle(_ request: Request, context: FlareRequestContext,
                next: (Request, FlareRequestContext) async throws -> Response) async throws -> Response {
        try limiter.take(context.clientAddress).enforce(what)
        return try await next(request, context)
    }
}
