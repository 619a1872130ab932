import FlareContracts
import Foundation

/// Accounts: sign-up, sign-in and sign-out, and the SSH keys a user's sessions accept. Rate
/// limits on the routes that take credentials stay with the API (they key on the client's
/// address, which only the API knows).
struct AccountService: Sendable {
    let store: Store
    let hasher: PasswordHasher
    /// Cuts live connections (here and in standalone gateways) when access is taken away.
    let revocations: RevocationHub
    /// Registration closes after the first account.
    let singleUser: Bool
    /// How long access tokens live.
    let accessTokenLifetime: TimeInterval

    func register(_ credentials: Credentials) async throws -> AuthResponse {
        let email = Self.normalized(credentials.email)
        try Self.validate(email: email, password: credentials.password)
        if singleUser, try await store.hasUsers() {
            throw ServiceError(.forbidden, code: "registration_closed",
                               "registration is closed: this server runs in single-user mode")
        }
        let user = UserRecord(id: FlareID.make("usr"), email: email,
                              passwordHash: try await hasher.hash(credentials.password), createdAt: Date())
        do {
            try await store.insertUser(user)
        } catch StoreError.duplicate {
            throw ServiceError.conflict("an account with this email already exists", code: "email_taken")
        }
        try await store.audit(userId: user.id, action: "user.register", target: user.id)
        return try await issueToken(for: user)
    }

    /// Checks the password in the same time whether or not the account exists.
    func login(_ credentials: Credentials) async throws -> AuthResponse {
        let email = Self.normalized(credentials.email)
        let user = try await store.user(email: email)
        let verified = if let user {
            try await hasher.verify(credentials.password, hash: user.passwordHash)
        } else {
            try await hasher.verifyNothing(credentials.password)
        }
        guard let user, verified else {
            try await store.audit(userId: nil, action: "user.login_failed", target: email)
            throw ServiceError(.unauthenticated, code: "invalid_credentials", "email or password is incorrect")
        }
        try await store.audit(userId: user.id, action: "user.login", target: user.id)
        return try await issueToken(for: user)
    }

    func me(_ actor: Caller, _ user: UserRecord) throws -> UserInfo {
        try authorize(actor, .accountRead)
        return user.info
    }

    /// Ends the access token the actor signed in with.
    func logout(_ actor: Caller, accessTokenHash: String) async throws {
        try authorize(actor, .accountSignOut)
        try await store.revokeAccessToken(hash: accessTokenHash, at: Date())
        try await store.audit(userId: actor.userId, action: "user.logout", target: actor.userId)
    }

    /// Signs out everywhere: every access token and runtime token of the user stops working, and
    /// their open SSH and terminal connections are cut.
    func logoutEverywhere(_ actor: Caller) async throws -> RevokeResponse {
        try authorize(actor, .accountSignOut)
        let now = Date()
        _ = try await store.revokeAccessTokens(userId: actor.userId, at: now)
        let revoked = try await store.revokeRuntimeTokens(userId: actor.userId, at: now)
        let closed = revocations.publish(Revocation(.user, actor.userId, reason: "\(actor.email) signed out everywhere"))
        try await store.audit(userId: actor.userId, action: "user.logout_all", target: actor.userId,
                              detail: "\(revoked) runtime tokens, \(closed) connections")
        return RevokeResponse(revokedTokens: revoked, closedConnections: closed)
    }

    func sshKeys(_ actor: Caller, limit: Int, after cursor: String?) async throws -> Page<SSHKeyInfo> {
        try authorize(actor, .sshKeyList)
        let page = try await Paging.fetch(cursor: cursor) {
            try await store.sshKeys(userId: actor.userId, limit: limit, after: cursor)
        }
        return Page(items: page.items.map(\.info), next: page.next)
    }

    func addSSHKey(_ actor: Caller, _ request: SSHKeyCreateRequest) async throws -> SSHKeyInfo {
        try authorize(actor, .sshKeyAdd)
        guard let key = SSHPublicKey(line: request.publicKey) else {
            throw ServiceError.invalid("publicKey is not an OpenSSH public key (expected e.g. 'ssh-ed25519 AAAA… comment')",
                                       code: "invalid_public_key")
        }
        let name = (request.name?.isEmpty == false ? request.name! : key.comment).prefix(100)
        let record = SSHKeyRecord(id: FlareID.make("key"), userId: actor.userId,
                                  name: name.isEmpty ? key.type : String(name),
                                  publicKey: key.line, fingerprint: key.fingerprint, createdAt: Date())
        do {
            try await store.insertSSHKey(record)
        } catch StoreError.duplicate {
            throw ServiceError.conflict("this key (\(key.fingerprint)) is already registered", code: "key_exists")
        }
        try await store.audit(userId: actor.userId, action: "ssh_key.add", target: record.id, detail: key.fingerprint)
        return record.info
    }

    func deleteSSHKey(_ actor: Caller, id: String) async throws {
        try authorize(actor, .sshKeyDelete)
        guard try await store.deleteSSHKey(userId: actor.userId, id: id) else { throw ServiceError.notFound("ssh key") }
        try await store.audit(userId: actor.userId, action: "ssh_key.delete", target: id)
    }

    /// An action on the actor's own account.
    private func authorize(_ actor: Caller, _ action: Action) throws {
        try Policy.authorize(actor, action, role: Policy.role(of: actor, inAccount: actor.userId), createdBy: actor.userId)
    }

    private func issueToken(for user: UserRecord) async throws -> AuthResponse {
        let token = SessionLifecycle.newSecret(prefix: "flr_")
        let now = Date()
        try await store.insertAccessToken(AccessTokenRecord(
            tokenHash: SessionLifecycle.hash(token), userId: user.id, createdAt: now,
            expiresAt: now.addingTimeInterval(accessTokenLifetime), revokedAt: nil))
        return AuthResponse(accessToken: token, user: user.info)
    }

    static func normalized(_ email: String) -> String {
        email.trimmingCharacters(in: .whitespaces).lowercased()
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
        else { throw ServiceError.invalid("email is not a valid address", code: "invalid_email") }
        guard password.count >= 8 else {
            throw ServiceError.invalid("password must be at least 8 characters", code: "weak_password")
        }
        guard password.utf8.count <= 72 else {
            throw ServiceError.invalid("password must be at most 72 bytes", code: "invalid_password")
        }
    }
}
