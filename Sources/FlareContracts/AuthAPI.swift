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

/// The answer to register and login: an opaque bearer token and who it belongs to.
public struct AuthResponse: Codable, Sendable {
    public var accessToken: String
    public var user: UserInfo

    public init(accessToken: String, user: UserInfo) {
        self.accessToken = accessToken
        self.user = user
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
