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
    /// How long a refresh token lives unused (each refresh hands out a new one).
    let refreshTokenLifetime: TimeInterval
    /// How long a device's sign-in codes live.
    let deviceCodeLifetime: TimeInterval

    func register(_ credentials: Credentials, from client: ClientInfo) async throws -> AuthResponse {
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
        return try await signIn(user, from: client)
    }

    /// Checks the password in the same time whether or not the account exists.
    func login(_ credentials: Credentials, from client: ClientInfo) async throws -> AuthResponse {
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
        return try await signIn(user, from: client)
    }

    func me(_ actor: Caller, _ user: UserRecord) throws -> UserInfo {
        try authorize(actor, .accountRead)
        return user.info
    }

    /// Trades a refresh token for the next access and refresh tokens. A token used a second time
    /// (stolen, or a copy left behind) ends its whole sign-in and cuts that sign-in's connections.
    func refresh(_ request: RefreshRequest, from client: ClientInfo) async throws -> AuthResponse {
        let now = Date()
        let (access, accessRecord) = newAccessToken(userId: "", signInId: "", at: now)
        let (refresh, refreshRecord) = newRefreshToken(signInId: "", at: now)
        let outcome = try await store.rotate(
            refreshTokenHash: SessionLifecycle.hash(request.refreshToken), access: accessRecord, refresh: refreshRecord,
            address: client.address, client: client.userAgent, at: now)
        switch outcome {
        case .rotated(let user, let signInId):
            return AuthResponse(accessToken: access, expiresIn: Int(accessTokenLifetime), refreshToken: refresh,
                                signInId: signInId, user: user.info)
        case .reused(let userId, let signInId, let runtimeTokens):
            let closed = revocations.publish(Revocation(.signIn, signInId, reason: "a refresh token was used twice"))
            try await store.audit(userId: userId, action: "sign_in.reuse_detected", target: signInId,
                                  detail: "\(runtimeTokens) runtime tokens, \(closed) connections, from \(client.address)")
            throw ServiceError(.unauthenticated, code: "refresh_token_reused",
                               "this refresh token was already used, so its sign-in has been ended everywhere; sign in again")
        case .unknown:
            throw ServiceError(.unauthenticated, code: "invalid_refresh_token", "the refresh token is not valid; sign in again")
        case .expired:
            throw ServiceError(.unauthenticated, code: "refresh_token_expired", "the refresh token has expired; sign in again")
        case .signedOut:
            throw ServiceError(.unauthenticated, code: "signed_out", "this sign-in has ended; sign in again")
        }
    }

    /// Ends the sign-in the actor called with: its access and refresh tokens stop working.
    func logout(_ actor: Caller, accessTokenHash: String) async throws {
        try authorize(actor, .accountSignOut)
        if let signInId = actor.signInId {
            _ = try await endSignIn(actor, signInId, reason: "signed out")
        } else {
            try await store.revokeAccessToken(hash: accessTokenHash, at: Date())
        }
        try await store.audit(actor, action: "user.logout", target: actor.userId)
    }

    /// Signs out everywhere: every sign-in, access token and runtime token of the user stops
    /// working, and their open SSH and terminal connections are cut.
    func logoutEverywhere(_ actor: Caller) async throws -> RevokeResponse {
        try authorize(actor, .accountSignOut)
        let now = Date()
        let revoked = try await store.endSignIns(userId: actor.userId, reason: "signed out everywhere", at: now)
            + store.revokeRuntimeTokens(userId: actor.userId, at: now)
        let closed = revocations.publish(Revocation(.user, actor.userId, reason: "\(actor.email) signed out everywhere"))
        try await store.audit(actor, action: "user.logout_all", target: actor.userId,
                              detail: "\(revoked) runtime tokens, \(closed) connections")
        return RevokeResponse(revokedTokens: revoked, closedConnections: closed)
    }

    /// The actor's signed-in devices.
    func signIns(_ actor: Caller, limit: Int, after cursor: String?) async throws -> Page<SignInInfo> {
        try authorize(actor, .accountSignInList)
        let page = try await Paging.fetch(cursor: cursor) {
            try await store.liveSignIns(userId: actor.userId, limit: limit, after: cursor, now: Date())
        }
        return Page(items: page.items.map { $0.info(current: $0.id == actor.signInId) }, next: page.next)
    }

    /// Ends one of the actor's sign-ins (another's is not found): its tokens stop working and its
    /// open connections are cut.
    func revokeSignIn(_ actor: Caller, id: String) async throws -> RevokeResponse {
        try authorize(actor, .accountSignInRevoke)
        let result = try await endSignIn(actor, id, reason: "ended by \(actor.email)")
        try await store.audit(actor, action: "sign_in.revoke", target: id,
                              detail: "\(result.revokedTokens) runtime tokens, \(result.closedConnections) connections")
        return result
    }

    private func endSignIn(_ actor: Caller, _ id: String, reason: String) async throws -> RevokeResponse {
        guard let runtimeTokens = try await store.endSignIn(id: id, userId: actor.userId, reason: reason, at: Date()) else {
            throw ServiceError.notFound("sign-in \(id)")
        }
        let closed = revocations.publish(Revocation(.signIn, id, reason: "the sign-in was ended (\(reason))"))
        return RevokeResponse(revokedTokens: runtimeTokens, closedConnections: closed)
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
        try await store.audit(actor, action: "ssh_key.add", target: record.id, detail: key.fingerprint)
        return record.info
    }

    func deleteSSHKey(_ actor: Caller, id: String) async throws {
        try authorize(actor, .sshKeyDelete)
        guard try await store.deleteSSHKey(userId: actor.userId, id: id) else { throw ServiceError.notFound("ssh key") }
        try await store.audit(actor, action: "ssh_key.delete", target: id)
    }

    // MARK: Device sign-in (RFC 8628)

    /// The seconds a device waits between polls unless told to slow down.
    static let devicePollInterval = 5
    /// RFC 8628 6.1: no vowels (no words), no easily confused letters; 20^8 codes.
    static let userCodeAlphabet = Array("BCDFGHJKLMNPQRSTVWXZ")

    /// Codes for a device to be signed in by a user signed in elsewhere. `origin` is the server as
    /// the device reached it, for the verification address.
    func startDeviceSignIn(from client: ClientInfo, origin: String) async throws -> DeviceAuthorizationResponse {
        let now = Date()
        try await store.purgeDeviceAuthorizations(before: now.addingTimeInterval(-86400))
        let deviceCode = SessionLifecycle.newSecret(prefix: "flrd_")
        var generator = SystemRandomNumberGenerator()
        let letters = (0..<8).map { _ in Self.userCodeAlphabet.randomElement(using: &generator)! }
        let userCode = String(letters[0..<4]) + "-" + String(letters[4...])
        try await store.insertDeviceAuthorization(DeviceAuthorizationRecord(
            deviceCodeHash: SessionLifecycle.hash(deviceCode), userCode: userCode, state: .pending, userId: nil,
            address: client.address, client: client.userAgent, intervalSeconds: Self.devicePollInterval,
            createdAt: now, expiresAt: now.addingTimeInterval(deviceCodeLifetime), lastPolledAt: nil))
        let verification = origin + "/device"
        return DeviceAuthorizationResponse(
            deviceCode: deviceCode, userCode: userCode, verificationUri: verification,
            verificationUriComplete: verification + "?code=" + userCode, expiresIn: Int(deviceCodeLifetime),
            interval: Self.devicePollInterval)
    }

    /// The device's poll: refused until a user decides, then the device's own new sign-in (once).
    func pollDeviceSignIn(_ request: DeviceTokenRequest) async throws -> AuthResponse {
        switch try await store.pollDeviceAuthorization(deviceCodeHash: SessionLifecycle.hash(request.deviceCode), at: Date()) {
        case .approved(let user, let address, let client):
            try await store.audit(userId: user.id, action: "user.login_device", target: user.id, detail: "\(address) \(client)")
            return try await signIn(user, from: ClientInfo(address: address, userAgent: client))
        case .pending:
            throw ServiceError(.invalid, code: "authorization_pending", "waiting for the code to be approved")
        case .slowDown(let interval):
            throw ServiceError(.invalid, code: "slow_down", "polling too often: wait \(interval) s between polls")
        case .denied:
            throw ServiceError(.invalid, code: "access_denied", "the sign-in was denied")
        case .expired:
            throw ServiceError(.invalid, code: "expired_token", "the code has expired or was used; start again")
        case .unknown:
            throw ServiceError(.invalid, code: "invalid_grant", "unknown device code")
        }
    }

    /// The device waiting on a pending code, for the user to check before deciding.
    func lookUpDeviceSignIn(_ actor: Caller, _ request: DeviceDecisionRequest) async throws -> DeviceDecisionResponse {
        try authorize(actor, .deviceSignInDecide)
        let code = try Self.userCode(request.userCode)
        guard let record = try await store.pendingDeviceAuthorization(userCode: code, at: Date()) else {
            throw ServiceError.notFound("pending code \(code)")
        }
        return DeviceDecisionResponse(userCode: code, approved: false, address: record.address, client: record.client)
    }

    /// A code as typed (any case, dash or not) in its stored form, `WDJB-MJHT`.
    static func userCode(_ typed: String) throws -> String {
        let letters = typed.uppercased().filter { $0 != "-" && !$0.isWhitespace }
        guard letters.count == 8, letters.allSatisfy(Self.userCodeAlphabet.contains) else {
            throw ServiceError.invalid("a code is 8 letters, like WDJB-MJHT", code: "invalid_user_code")
        }
        return String(letters.prefix(4)) + "-" + String(letters.suffix(4))
    }

    /// A signed-in user approves or denies a device's code (typed as shown, any case, dash or not).
    func decideDeviceSignIn(_ actor: Caller, _ request: DeviceDecisionRequest, approve: Bool) async throws
        -> DeviceDecisionResponse
    {
        try authorize(actor, .deviceSignInDecide)
        let code = try Self.userCode(request.userCode)
        switch try await store.decideDeviceAuthorization(userCode: code, userId: actor.userId, approve ? .approve : .deny,
                                                         at: Date()) {
        case .decided(let record):
            try await store.audit(actor, action: approve ? "device.approve" : "device.deny", target: code,
                                  detail: "\(record.address) \(record.client)")
            return DeviceDecisionResponse(userCode: code, approved: approve, address: record.address, client: record.client)
        case .alreadyDecided:
            throw ServiceError.conflict("the code \(code) was already approved or denied", code: "already_decided")
        case .expired:
            throw ServiceError(.invalid, code: "expired_token", "the code \(code) has expired")
        case .unknown:
            throw ServiceError.notFound("code \(code)")
        }
    }

    /// An action on the actor's own account.
    private func authorize(_ actor: Caller, _ action: Action) throws {
        try Policy.authorize(actor, action, role: Policy.role(of: actor, inAccount: actor.userId), createdBy: actor.userId)
    }

    /// A new sign-in for `user` with its first access and refresh tokens.
    private func signIn(_ user: UserRecord, from client: ClientInfo) async throws -> AuthResponse {
        let now = Date()
        let signIn = SignInRecord(id: FlareID.make("sgn"), userId: user.id, createdAt: now, lastUsedAt: now,
                                  address: client.address, client: client.userAgent, revokedAt: nil, revokedReason: nil)
        let (access, accessRecord) = newAccessToken(userId: user.id, signInId: signIn.id, at: now)
        let (refresh, refreshRecord) = newRefreshToken(signInId: signIn.id, at: now)
        try await store.insertSignIn(signIn, access: accessRecord, refresh: refreshRecord)
        return AuthResponse(accessToken: access, expiresIn: Int(accessTokenLifetime), refreshToken: refresh,
                            signInId: signIn.id, user: user.info)
    }

    private func newAccessToken(userId: String, signInId: String, at now: Date) -> (String, AccessTokenRecord) {
        let token = SessionLifecycle.newSecret(prefix: "flr_")
        return (token, AccessTokenRecord(tokenHash: SessionLifecycle.hash(token), userId: userId, createdAt: now,
                                         expiresAt: now.addingTimeInterval(accessTokenLifetime), revokedAt: nil,
                                         signInId: signInId))
    }

    private func newRefreshToken(signInId: String, at now: Date) -> (String, RefreshTokenRecord) {
        let token = SessionLifecycle.newSecret(prefix: "flrr_")
        return (token, RefreshTokenRecord(tokenHash: SessionLifecycle.hash(token), signInId: signInId, createdAt: now,
                                          expiresAt: now.addingTimeInterval(refreshTokenLifetime), usedAt: nil))
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

/// Where a call came from, as a sign-in records it.
struct ClientInfo: Sendable {
    var address: String
    /// The client's `User-Agent`, at most 200 characters.
    var userAgent: String
}

extension SignInRecord {
    func info(current: Bool) -> SignInInfo {
        SignInInfo(id: id, createdAt: createdAt, lastUsedAt: lastUsedAt, address: address, client: client, current: current)
    }
}
