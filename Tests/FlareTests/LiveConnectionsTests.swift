import FlareContracts
import Foundation
@testable import Gateway
import NIOConcurrencyHelpers
import Testing

/// A revocation that reaches the gateway while a connection is between its token check and its
/// registration still closes it; tokens issued after the revocation are not affected.
@Suite struct LiveConnectionsTests {
    func claims(session: String, issuedAt: Date) -> RuntimeTokenClaims {
        RuntimeTokenClaims(id: FlareID.make("rt"), sessionId: session, userId: "usr_1", purpose: .ssh,
                           issuedAt: issuedAt, expiresAt: issuedAt.addingTimeInterval(300), signInId: "sgn_1")
    }

    func register(_ connections: LiveConnections, _ claims: RuntimeTokenClaims) -> NIOLockedValueBox<[RelayEnding]> {
        let endings = NIOLockedValueBox<[RelayEnding]>([])
        _ = connections.register(claims, lastActivity: NIOLockedValueBox(.now)) { ending in
            endings.withLockedValue { $0.append(ending) }
        }
        return endings
    }

    @Test func aConnectionRegisteringAfterItsTokensRevocationIsClosedAsItRegisters() {
        let connections = LiveConnections()
        let checked = claims(session: "ses_1", issuedAt: Date().addingTimeInterval(-1))
        #expect(connections.close(Revocation(.session, "ses_1", reason: "session dev is stopping")) == 0)
        let late = register(connections, checked)
        #expect(late.withLockedValue { $0 } == [.revoked("session dev is stopping")])

        // A token issued after the revocation (the session woke again) keeps its connection, and
        // so does another session's.
        let fresh = register(connections, claims(session: "ses_1", issuedAt: Date().addingTimeInterval(1)))
        let other = register(connections, claims(session: "ses_2", issuedAt: Date().addingTimeInterval(-1)))
        #expect(fresh.withLockedValue { $0 }.isEmpty)
        #expect(other.withLockedValue { $0 }.isEmpty)
    }

    @Test func aSignInsRevocationMatchesOnlyTokensIssuedUnderIt() {
        let revocation = Revocation(.signIn, "sgn_1", reason: "a refresh token was used twice")
        let before = claims(session: "ses_1", issuedAt: Date().addingTimeInterval(-5))
        var otherSignIn = before
        otherSignIn.signInId = "sgn_2"
        var legacy = before
        legacy.signInId = nil
        #expect(revocation.matches(before) && revocation.precedes(before))
        #expect(!revocation.matches(otherSignIn) && !revocation.matches(legacy))
    }
}
