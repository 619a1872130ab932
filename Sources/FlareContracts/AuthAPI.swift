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

/// `POST /api/auth/device`: a device (a CLI without a browser or a password) asks to be signed in
/// by a user who is signed in elsewhere (RFC 8628).
public struct DeviceAuthorizationRequest: Codable, Sendable {
    public init() {}
}

/// The codes of a device sign-in: the device polls with `deviceCode`; the user approves `userCode`.
public struct DeviceAuthorizationResponse: Codable, Sendable, Equatable {
    /// Secret: only the device that asked holds it.
    public var deviceCode: String
    /// Short, for a person to type: `WDJB-MJHT`.
    public var userCode: String
    /// Where a signed-in user approves the code (`flare auth approve CODE` does the same).
    public var verificationUri: String
    public var verificationUriComplete: String
    /// Seconds until the codes expire.
    public var expiresIn: Int
    /// Seconds the device waits between polls (more after a `slow_down`).
    public var interval: Int

    public init(deviceCode: String, userCode: String, verificationUri: String, verificationUriComplete: String,
                expiresIn: Int, interval: Int) {
        self.deviceCode = deviceCode
        self.userCode = userCode
        self.verificationUri = verificationUri
        self.verificationUriComplete = verificationUriComplete
        self.expiresIn = expiresIn
        self.interval = interval
    }
}

/// `POST /api/auth/device/token`: the device's poll. Until the user decides it is refused with
/// `authorization_pending` (or `slow_down`, polling too often); then `access_denied`,
/// `expired_token`, or the sign-in.
public struct DeviceTokenRequest: Codable, Sendable {
    public var deviceCode: String

    public init(deviceCode: String) {
        self.deviceCode = deviceCode
    }
}

/// `POST /api/auth/device/approve` and `/deny`: a signed-in user's decision on a code.
public struct DeviceDecisionRequest: Codable, Sendable {
    public var userCode: String

    public init(userCode: String) {
        self.userCode = userCode
    }
}

/// What was decided, and for which device.
public struct DeviceDecisionResponse: Codable, Sendable, Equatable {
    public var userCode: String
    public var approved: Bool
    /// The device's address and client, as it asked.
    public var address: String
    public var client: String

    public init(userCode: String, approved: Bool, address: String, client: String) {
        self.userCode = userCode
        self.approved = approved
        self.address = address
        self.client = client
    }
}
