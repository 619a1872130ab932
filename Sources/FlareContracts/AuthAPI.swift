import Foundation

/// `POST /api/auth/register` and `POST /api/auth/login`.
public struct Credentials: Codable, Sendable {
    public var email: String
    public var password: String

    public init(email: String, password: String) {
        self.email = email
        self.password = password
    }
}

/// A signed-in user as the API shows it.
public struct UserInfo: Codable, Sendable, Equatable {
    public var id: String
    public var email: String
    public var createdAt: Date

    public init(id: String, email: String, createdAt: Date) {
        self.id = id
        self.email = email
        self.createdAt = createdAt
    }
}

/// The answer to register, login and refresh: a short-lived bearer token, the one-use refresh
/// token that gets the next, and who they belong to.
public struct AuthResponse: Codable, Sendable {
    public var accessToken: String
    /// Seconds the access token lives from now (clocks may differ: count from receipt).
    public var expiresIn: Int
    /// Trade it at `POST /api/auth/refresh` for the next pair; it works once.
    public var refreshToken: String
    /// The sign-in (device) these tokens belong to, as `GET /api/auth/sessions` lists it.
    public var signInId: String
    public var user: UserInfo

    public init(accessToken: String, expiresIn: Int, refreshToken: String, signInId: String, user: UserInfo) {
        self.accessToken = accessToken
        self.expiresIn = expiresIn
        self.refreshToken = refreshToken
        self.signInId = signInId
        self.user = user
    }
}

/// `POST /api/auth/refresh`.
public struct RefreshRequest: Codable, Sendable {
    public var refreshToken: String

    public init(refreshToken: String) {
        self.refreshToken = refreshToken
    }
}

/// A signed-in device: one sign-in and the tokens rotated from it.
public struct SignInInfo: Codable, Sendable, Equatable {
    public var id: String
    public var createdAt: Date
    /// When its tokens were last issued (sign-in or refresh): within an access token's life of its last call.
    public var lastUsedAt: Date
    /// The client address it signed in or last refreshed from.
    public var address: String
    /// The client's `User-Agent`.
    public var client: String
    /// Whether this is the sign-in of the token that asked.
    public var current: Bool

    public init(id: String, createdAt: Date, lastUsedAt: Date, address: String, client: String, current: Bool) {
        self.id = id
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
        self.address = address
        self.client = client
        self.current = current
    }
}

/// `GET /api/health`.
public struct HealthResponse: Codable, Sendable {
    public var status: String
    public var version: String

    public init(status: String, version: String) {
        self.status = status
        self.version = version
    }
}

/// `POST /api/ssh-keys`.
public struct SSHKeyCreateRequest: Codable, Sendable {
    public var name: String?
    public var publicKey: String

    public init(name: String?, publicKey: String) {
        self.name = name
        self.publicKey = publicKey
    }
}

/// A user's registered SSH public key.
public struct SSHKeyInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var publicKey: String
    public var fingerprint: String
    public var createdAt: Date

    public init(id: String, name: String, publicKey: String, fingerprint: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.publicKey = publicKey
        self.fingerprint = fingerprint
        self.createdAt = createdAt
    }
}
