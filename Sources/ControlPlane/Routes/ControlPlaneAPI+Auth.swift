import FlareContracts
import Foundation
import Hummingbird

/// Sign-up and sign-in: adapters over ``AccountService``, behind the per-address and
/// per-account rate limits (429 past them).
extension ControlPlaneAPI {
    func addAuthRoutes(to router: Router<FlareRequestContext>) {
        router.post("/api/auth/register") { request, context -> EditedResponse<AuthResponse> in
            try rateLimits.registerByAddress.take(context.clientAddress).enforce("sign-ups from this address")
            let credentials = try await request.decodeJSON(Credentials.self, context: context)
            return EditedResponse(status: .created, response: try await accounts.register(credentials))
        }

        router.post("/api/auth/login") { request, context -> AuthResponse in
            try rateLimits.loginByAddress.take(context.clientAddress).enforce("sign-in attempts from this address")
            let credentials = try await request.decodeJSON(Credentials.self, context: context)
            try rateLimits.loginByAccount.take(AccountService.normalized(credentials.email))
                .enforce("sign-in attempts for this account")
            return try await accounts.login(credentials)
        }
    }
}
