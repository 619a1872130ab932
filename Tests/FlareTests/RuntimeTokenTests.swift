import Crypto
import FlareContracts
import Foundation
import Testing

@Suite struct RuntimeTokenTests {
    let key = Curve25519.Signing.PrivateKey()

    func claims(expiresIn seconds: TimeInterval = 300, purpose: RuntimeTokenPurpose = .ssh) -> RuntimeTokenClaims {
        let now = Date()
        return RuntimeTokenClaims(id: "rt_1", sessionId: "ses_a", userId: "usr_a", purpose: purpose, issuedAt: now,
                                  expiresAt: now.addingTimeInterval(seconds))
    }

    @Test func genuineTokenVerifies() async throws {
        let token = try RuntimeToken.sign(claims(), with: key)
        let verified = try RuntimeTokenVerifier(publicKey: key.publicKey).verify(token, sessionId: "ses_a", purpose: .ssh)
        #expect(verified.userId == "usr_a")
    }

    @Test func forgedTokenIsRejected() async throws {
        let token = try RuntimeToken.sign(claims(), with: Curve25519.Signing.PrivateKey())
        #expect(throws: RuntimeTokenError.badSignature) {
            try RuntimeTokenVerifier(publicKey: key.publicKey).verify(token, sessionId: "ses_a", purpose: .ssh)
        }
    }

    @Test func tamperedClaimsAreRejected() async throws {
        let token = try RuntimeToken.sign(claims(), with: key)
        let parts = token.split(separator: ".").map(String.init)
        var payload = try #require(Base64URL.decode(parts[1]))
        payload = Data(String(decoding: payload, as: UTF8.self).replacingOccurrences(of: "ses_a", with: "ses_b").utf8)
        let forged = [parts[0], Base64URL.encode(payload), parts[2]].joined(separator: ".")
        #expect(throws: RuntimeTokenError.badSignature) {
            try RuntimeTokenVerifier(publicKey: key.publicKey).verify(forged, sessionId: "ses_b", purpose: .ssh)
        }
    }

    @Test func expiredWrongSessionWrongPurposeAndGarbage() async throws {
        let verifier = RuntimeTokenVerifier(publicKey: key.publicKey)
        let expired = try RuntimeToken.sign(claims(expiresIn: -1), with: key)
        #expect(throws: RuntimeTokenError.expired) { try verifier.verify(expired, sessionId: "ses_a", purpose: .ssh) }
        let tooLong = try RuntimeToken.sign(claims(expiresIn: 3600), with: key)
        #expect(throws: RuntimeTokenError.expired) { try verifier.verify(tooLong, sessionId: "ses_a", purpose: .ssh) }
        let good = try RuntimeToken.sign(claims(), with: key)
        #expect(throws: RuntimeTokenError.wrongSession) { try verifier.verify(good, sessionId: "ses_b", purpose: .ssh) }
        #expect(throws: RuntimeTokenError.wrongPurpose) {
            try verifier.verify(good, sessionId: "ses_a", purpose: .terminal)
        }
        #expect(throws: RuntimeTokenError.malformed) { try verifier.verify("nonsense", sessionId: "ses_a", purpose: .ssh) }
    }
}
