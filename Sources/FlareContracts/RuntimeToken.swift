import Crypto
import Foundation

/// What a runtime token lets its holder do.
public enum RuntimeTokenPurpose: String, Codable, Sendable, CaseIterable {
    case ssh
    case terminal
}

/// The signed claims of a runtime token.
public struct RuntimeTokenClaims: Codable, Sendable, Equatable {
    /// Unique token id, for revocation.
    public var id: String
    public var sessionId: String
    public var userId: String
    public var purpose: RuntimeTokenPurpose
    public var issuedAt: Date
    public var expiresAt: Date
    /// The sign-in whose access token asked for it (ending that sign-in cuts its connections).
    public var signInId: String?

    public init(id: String, sessionId: String, userId: String, purpose: RuntimeTokenPurpose, issuedAt: Date,
                expiresAt: Date, signInId: String? = nil) {
        self.id = id
        self.sessionId = sessionId
        self.userId = userId
        self.purpose = purpose
        self.issuedAt = issuedAt
        self.expiresAt = expiresAt
        self.signInId = signInId
    }

    enum CodingKeys: String, CodingKey {
        case id = "jti", sessionId = "sid", userId = "sub", purpose = "pur", issuedAt = "iat", expiresAt = "exp"
        case signInId = "sgn"
    }
}

/// Runtime tokens: `frt1.<base64url claims>.<base64url Ed25519 signature over "frt1.<claims>">`.
///
/// Short-lived and bound to one session, one user and one purpose; checked by the gateway before
/// any WebSocket upgrade.
public enum RuntimeToken {
    static let prefix = "frt1"
    /// The longest lifetime the verifier accepts, whatever a token claims.
    public static let maximumLifetime: TimeInterval = 15 * 60

    /// Signs `claims` with the control plane's key.
    public static func sign(_ claims: RuntimeTokenClaims, with key: Curve25519.Signing.PrivateKey) throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        let body = prefix + "." + Base64URL.encode(try encoder.encode(claims))
        let signature = try key.signature(for: Data(body.utf8))
        return body + "." + Base64URL.encode(signature)
    }
}

/// Why a runtime token was refused.
public struct RuntimeTokenError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case malformed, badSignature, expired, wrongSession, wrongPurpose, revoked
    }

    let kind: Kind
    public let description: String

    public static let malformed = RuntimeTokenError(kind: .malformed, description: "the runtime token is malformed")
    public static let badSignature = RuntimeTokenError(
        kind: .badSignature, description: "the runtime token's signature is not valid")
    public static let expired = RuntimeTokenError(kind: .expired, description: "the runtime token has expired")
    public static let wrongSession = RuntimeTokenError(
        kind: .wrongSession, description: "the runtime token is for another session")
    public static let wrongPurpose = RuntimeTokenError(
        kind: .wrongPurpose, description: "the runtime token is for another purpose")
    public static let revoked = RuntimeTokenError(kind: .revoked, description: "the runtime token was revoked")

    /// True for refusals that mean "who are you?" (401) rather than "not for this" (403).
    public var isAuthenticationFailure: Bool {
        kind == .malformed || kind == .badSignature || kind == .expired || kind == .revoked
    }

    /// A short machine-readable reason, for error codes and metrics.
    public var code: String {
        switch kind {
        case .malformed: "token_malformed"
        case .badSignature: "token_invalid"
        case .expired: "token_expired"
        case .wrongSession: "token_wrong_session"
        case .wrongPurpose: "token_wrong_purpose"
        case .revoked: "token_revoked"
        }
    }
}

/// Checks runtime tokens against the control plane's public key.
public struct RuntimeTokenVerifier: Sendable {
    public let publicKey: Curve25519.Signing.PublicKey

    public init(publicKey: Curve25519.Signing.PublicKey) {
        self.publicKey = publicKey
    }

    /// Returns the claims if `token` is genuine, unexpired, and for `sessionId` and `purpose`.
    public func verify(_ token: String, sessionId: String, purpose: RuntimeTokenPurpose, now: Date = Date())
        throws(RuntimeTokenError) -> RuntimeTokenClaims
    {
        let claims = try verify(token, now: now)
        guard claims.sessionId == sessionId else { throw .wrongSession }
        guard claims.purpose == purpose else { throw .wrongPurpose }
        return claims
    }

    /// Returns the claims if `token` is genuine and unexpired, whatever its session and purpose
    /// (the control plane answering a gateway that already checked those).
    public func verify(_ token: String, now: Date = Date()) throws(RuntimeTokenError) -> RuntimeTokenClaims {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == RuntimeToken.prefix,
              let payload = Base64URL.decode(String(parts[1])),
              let signature = Base64URL.decode(String(parts[2]))
        else { throw .malformed }
        let body = Data("\(parts[0]).\(parts[1])".utf8)
        guard publicKey.isValidSignature(signature, for: body) else { throw .badSignature }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        guard let claims = try? decoder.decode(RuntimeTokenClaims.self, from: payload) else { throw .malformed }
        guard claims.expiresAt > now,
              claims.expiresAt.timeIntervalSince(claims.issuedAt) <= RuntimeToken.maximumLifetime
        else { throw .expired }
        return claims
    }
}

/// Unpadded base64url, as tokens use it.
public enum Base64URL {
    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard !base64.contains("=") else { return nil }
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
