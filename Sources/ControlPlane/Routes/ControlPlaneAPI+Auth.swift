import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird

extension ControlPlaneAPI {
    func addAuthRoutes(to router: Router<FlareRequestContext>) {
        router.post("/api/auth/register") { request, context -> EditedResponse<AuthResponse> in
            try rateLimits.registerByAddress.take(context.clientAddress).enforce("sign-ups from this address")
            let credentials = try await request.decodeJSON(Credentials.self, context: context)
            let email = credentials.email.trimmingCharacters(in: .whitespaces).lowercased()
            try Self.validate(email: email, password: credentials.password)
            if singleUser, try await store.hasUsers() {
                throw APIError.forbidden("registration is closed: this server runs in single-user mode",
                                         code: "registration_closed")
            }
            let user = UserRecord(id: FlareID.make("usr"), email: email,
                                  passwordHash: try await hasher.hash(credentials.password), createdAt: Date())
            do {
                try await store.insertUser(user)
            } catch StoreError.duplicate {
                throw APIError.conflict("an account with this email already exists", code: "email_taken")
            }
            try await store.audit(userId: user.id, action: "user.register", target: user.id)
            return EditedResponse(status: .created, response: try await issueToken(for: user))
        }

        router.post("/api/auth/login") { request, context -> AuthResponse in
            try rateLimits.loginByAddress.take(context.clientAddress).enforce("sign-in attempts from this address")
            let credentials = try await request.decodeJSON(Credentials.self, context: context)
            let email = credentials.email.trimmingCharacters(in: .whitespaces).lowercased()
            try rateLimits.loginByAccount.take(email).enforce("sign-in attempts for this account")
            let user = try await store.user(email: email)
            let verified = if let user {
                try await hasher.verify(credentials.password, hash: user.passwordHash)
            } else {
                try await hasher.verifyNothing(credentials.password)
            }
            guard let user, verified else {
                try await store.audit(userId: nil, action: "user.login_failed", target: email)
                throw APIError.unauthorized("email or password is incorrect", code: "invalid_credentials")
            }
            try await store.audit(userId: user.id, action: "user.login", target: user.id)
            return try await issueToken(for: user)
        }
    }

    func issueToken(for user: UserRecord) async throws -> AuthResponse {
        let token = SessionLifecycle.newSecret(prefix: "flr_")
        let now = Date()
        try await store.insertAccessToken(AccessTokenRecord(
            tokenHash: SessionLifecycle.hash(token), userId: user.id, createdAt: now,
            expiresAt: now.addingTimeInterval(accessTokenLifetime), revokedAt: nil))
        return AuthResponse(accessToken: token, user: user.info)
    }

    static func validate(email: String, password: String) throws {
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        // Checked before anything is stored: no control characters, quoting or bracket syntax
        // (which would turn up in logs, audit lines and other clients' tables), and a domain of
        // non-empty labels.
        let forbidden = Set("<>()[]\\,;:\"")
        guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 64, email.count <= 254,
              !email.contains(where: { $0.isWhitespace || forbidden.contains($0) }),
              !email.unicodeScalars.contains(where: { $0.properties.generalCategory == .control
                  || $0.properties.generalCategory == .format }),
              parts[1].contains("."), parts[1].split(separator: ".", omittingEmptySubsequences: false).allSatisfy({
                  !$0.isEmpty && $0.count <= 63 && !$0.hasPrefix("-") && !$0.hasSuffix("-")
              })
        else { throw APIError.badRequest("email is not a valid address", code: "invalid_email") }
        guard password.count >= 8 else {
            throw APIError.badRequest("password must be at least 8 characters", code: "weak_password")
        }
        guard password.utf8.count <= 72 else {
            throw APIError.badRequest("password must be at most 72 bytes", code: "invalid_password")
        }
    }
}
