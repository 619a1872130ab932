@testable import ControlPlane
import FlareContracts
import FlareSystem
import Foundation
import Testing

/// `flare auth login --device` (RFC 8628): a device without a password is signed in once a user
/// signed in elsewhere approves its code. The protocol's answers are checked as a device and as a
/// code-guessing user would see them.
@Suite(.timeLimit(.minutes(5)))
struct DeviceLoginTests {
    func post(_ fixture: ServerFixture, _ endpoint: Endpoint<NoParameters, some Any, some Any>, _ body: String,
              token: String? = nil) async throws -> CurlResponse {
        try await Curl.request(fixture.url + endpoint.path, method: "POST",
                               headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:], body: body)
    }

    func codes(_ fixture: ServerFixture) async throws -> DeviceAuthorizationResponse {
        let response = try await post(fixture, Endpoints.Auth.deviceAuthorization, "{}")
        #expect(response.status == 200, "\(response.body)")
        return try FlareJSON.decoder().decode(DeviceAuthorizationResponse.self, from: Data(response.body.utf8))
    }

    func poll(_ fixture: ServerFixture, _ codes: DeviceAuthorizationResponse) async throws -> CurlResponse {
        try await post(fixture, Endpoints.Auth.deviceToken, #"{"deviceCode":"\#(codes.deviceCode)"}"#)
    }

    func decide(_ fixture: ServerFixture, _ code: String, approve: Bool, token: String) async throws -> CurlResponse {
        try await post(fixture, approve ? Endpoints.Auth.deviceApprove : Endpoints.Auth.deviceDeny,
                       #"{"userCode":"\#(code)"}"#, token: token)
    }

    @Test func aDeviceIsSignedInOnceAUserApprovesItsCode() async throws {
        let fixture = try await ServerFixture()
        let registered = try await fixture.flare(["auth", "register", "--email", "dev@example.com", "--password-stdin"],
                                                 stdin: "a long password\n")
        #expect(registered.status == 0, "\(registered.stderr)")
        let device = fixture.environment.merging(["FLARE_CONFIG_DIR": fixture.directory.path("device")]) { $1 }
        let log = try TemporaryFile()
        let login = try SpawnedProcess([TestProcess.binary("flare"), "auth", "login", "--device"], environment: device,
                                       stdin: nil, stdout: log.handle.fileDescriptor, stderr: log.handle.fileDescriptor)
        #expect(await waitFor(timeout: 15) { log.contents().contains("flare auth approve ") }, "\(log.contents())")
        let code = try #require(log.contents().firstMatch(of: /flare auth approve ([A-Z]{4}-[A-Z]{4})/).map { String($0.1) })
        #expect(log.contents().contains("/device?code=\(code)"), "\(log.contents())")

        // Asked first, with the device's address and client: no answer is no approval.
        let unconfirmed = try await fixture.flare(["auth", "approve", code], stdin: "n\n",
                                                  environment: ["FLARE_CONFIRM_FROM_STDIN": "1"])
        #expect(unconfirmed.status != 0 && unconfirmed.stderr.contains("from 127.0.0.1") && unconfirmed.stderr.contains("flare/"),
                "\(unconfirmed.stderr)")
        let noTerminal = try await fixture.flare(["auth", "approve", code])
        #expect(noTerminal.status != 0 && noTerminal.stderr.contains("--yes"), "\(noTerminal.stderr)")
        let approved = try await fixture.flare(["auth", "approve", code.lowercased()], stdin: "y\n",
                                               environment: ["FLARE_CONFIRM_FROM_STDIN": "1"])
        #expect(approved.status == 0 && approved.stdout.contains("Approved \(code)") && approved.stdout.contains("flare/"),
                "\(approved.stdout) \(approved.stderr)")
        #expect(await login.exited(timeout: 20) == 0, "\(log.contents())")
        #expect(log.contents().contains("Signed in as dev@example.com"), "\(log.contents())")
        let whoami = try await fixture.flare(["auth", "whoami"], environment: ["FLARE_CONFIG_DIR": fixture.directory.path("device")])
        #expect(whoami.status == 0 && whoami.stdout.contains("dev@example.com"), "\(whoami.stderr)")
        let signIns = try FlareJSON.decoder().decode([SignInInfo].self, from: Data(
            try await fixture.flare(["auth", "sessions", "--json"]).stdout.utf8))
        #expect(signIns.count == 2, "\(signIns)")
    }

    @Test func pendingSlowDownDeniedApprovedAndExpiredAreAnsweredAsTheRFCSays() async throws {
        let fixture = try await ServerFixture(arguments: ["--device-code-seconds", "3"])
        let token = try await Curl.register(fixture.url, email: "dev@example.com")

        // Pending until decided; polling faster than the interval is told to slow down (+5 s).
        let pending = try await codes(fixture)
        #expect(pending.interval == 5 && pending.expiresIn == 3)
        #expect(pending.userCode.wholeMatch(of: /[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}/) != nil)
        let first = try await poll(fixture, pending)
        #expect(first.status == 400 && first.body.contains("authorization_pending"), "\(first.body)")
        let fast = try await poll(fixture, pending)
        #expect(fast.status == 400 && fast.body.contains("slow_down") && fast.body.contains("10 s"), "\(fast.body)")

        // Denied: the device is told so, and the decision cannot be changed.
        let denied = try await codes(fixture)
        #expect(try await decide(fixture, denied.userCode, approve: false, token: token).status == 200)
        let refused = try await poll(fixture, denied)
        #expect(refused.status == 400 && refused.body.contains("access_denied"), "\(refused.body)")
        let changed = try await decide(fixture, denied.userCode, approve: true, token: token)
        #expect(changed.status == 409, "\(changed.body)")

        // Approved: the device gets its sign-in once.
        let approved = try await codes(fixture)
        #expect(try await decide(fixture, approved.userCode.replacingOccurrences(of: "-", with: ""), approve: true,
                                 token: token).status == 200)
        let signedIn = try await poll(fixture, approved)
        #expect(signedIn.status == 200, "\(signedIn.body)")
        let auth = try FlareJSON.decoder().decode(AuthResponse.self, from: Data(signedIn.body.utf8))
        #expect(auth.user.email == "dev@example.com")
        #expect(try await Curl.request(fixture.url + "/api/me", headers: ["Authorization": "Bearer \(auth.accessToken)"]).status == 200)

        // Expired: past its 3 s, a code is refused to the device and to the approver.
        let late = try await codes(fixture)
        try await Task.sleep(for: .seconds(3.2))
        let expired = try await poll(fixture, late)
        #expect(expired.status == 400 && expired.body.contains("expired_token"), "\(expired.body)")
        let tooLate = try await decide(fixture, late.userCode, approve: true, token: token)
        #expect(tooLate.status == 400 && tooLate.body.contains("expired_token"), "\(tooLate.body)")
        // The one used before now answers expired too (once it is past its pace).
        let usedAgain = try await poll(fixture, approved)
        #expect(usedAgain.status == 400 && usedAgain.body.contains("expired_token"), "\(usedAgain.body)")
    }

    @Test func codesCannotBeGuessedOrDecidedWithoutSigningIn() async throws {
        let fixture = try await ServerFixture()
        let token = try await Curl.register(fixture.url, email: "dev@example.com")
        let target = try await codes(fixture)
        #expect(try await decide(fixture, target.userCode, approve: true, token: "flr_not-a-token").status == 401)
        #expect(try await post(fixture, Endpoints.Auth.deviceToken, #"{"deviceCode":"flrd_made-up"}"#).body.contains("invalid_grant"))
        let malformed = try await decide(fixture, "AEIOU", approve: true, token: token)
        #expect(malformed.status == 400 && malformed.body.contains("invalid_user_code"), "\(malformed.body)")
        // Guessing is slowed per account: 10 decisions a minute (the malformed one above counted), then 429.
        var statuses: [Int] = []
        for _ in 0..<10 { statuses.append(try await decide(fixture, "BCDF-GHJK", approve: true, token: token).status) }
        #expect(statuses == Array(repeating: 404, count: 9) + [429], "\(statuses)")
        // None of that touched the real code: it is still pending.
        let still = try await poll(fixture, target)
        #expect(still.body.contains("authorization_pending"), "\(still.body)")
    }

    @Test func everyTransitionOfADeviceCode() {
        let allowed: [DeviceAuthorizationState: [DeviceAuthorizationState.Event: DeviceAuthorizationState]] = [
            .pending: [.approve: .approved, .deny: .denied],
            .approved: [.use: .used],
            .denied: [:],
            .used: [:],
        ]
        for state in DeviceAuthorizationState.allCases {
            for event in DeviceAuthorizationState.Event.allCases {
                #expect(state.after(event) == allowed[state]?[event], "\(state) \(event)")
            }
        }
    }
}
