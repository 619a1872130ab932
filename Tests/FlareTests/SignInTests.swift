import FlareContracts
import Foundation
import Testing

/// Sign-in that rotates: short access tokens the CLI refreshes on its own, one-use refresh tokens
/// whose reuse ends the whole sign-in (and cuts its connections), and signed-in devices a user
/// lists and ends. Driven as a user and as someone holding a stolen token would.
@Suite(.timeLimit(.minutes(5)))
struct SignInTests {
    func refresh(_ fixture: ServerFixture, _ token: String) async throws -> CurlResponse {
        try await Curl.request(fixture.url + Endpoints.Auth.refresh.path, method: "POST",
                               body: #"{"refreshToken":"\#(token)"}"#)
    }

    func string(_ config: [String: Any], _ key: String) throws -> String {
        try #require(config[key] as? String, "\(key) in \(config.keys.sorted())")
    }

    @Test func theCLIRefreshesItsAccessTokenAndEachRefreshTokenWorksOnce() async throws {
        let fixture = try await ServerFixture(arguments: ["--access-token-seconds", "2"])
        let registered = try await fixture.flare(["auth", "register", "--email", "dev@example.com", "--password-stdin"],
                                                 stdin: "a long password\n")
        #expect(registered.status == 0, "\(registered.stderr)")
        let first = try fixture.cliConfig()
        let (firstAccess, firstRefresh) = (try string(first, "accessToken"), try string(first, "refreshToken"))

        // The access token dies after 2 s; the CLI trades its refresh token without being asked.
        try await Task.sleep(for: .seconds(2.5))
        #expect(try await Curl.request(fixture.url + "/api/me", headers: ["Authorization": "Bearer \(firstAccess)"]).status == 401)
        let whoami = try await fixture.flare(["auth", "whoami"])
        #expect(whoami.status == 0 && whoami.stdout.contains("dev@example.com"), "\(whoami.stderr)")
        let second = try fixture.cliConfig()
        let secondAccess = try string(second, "accessToken")
        #expect(secondAccess != firstAccess)
        #expect(try string(second, "refreshToken") != firstRefresh)
        #expect(try string(second, "signInId") == (try string(first, "signInId")), "a refresh stays in its sign-in")

        // A copy of the spent refresh token (stolen, or left in a backup) ends the sign-in.
        let reused = try await refresh(fixture, firstRefresh)
        #expect(reused.status == 401)
        #expect(reused.body.contains("refresh_token_reused"), "\(reused.body)")
        #expect(try await Curl.request(fixture.url + "/api/me", headers: ["Authorization": "Bearer \(secondAccess)"]).status == 401)
        let after = try await refresh(fixture, try string(second, "refreshToken"))
        #expect(after.status == 401 && after.body.contains("signed_out"), "\(after.body)")
        let signedOut = try await fixture.flare(["auth", "whoami"])
        #expect(signedOut.status != 0)
        #expect(signedOut.stderr.contains("signed out") && signedOut.stderr.contains("flare auth login"), "\(signedOut.stderr)")

        // Made-up and malformed refresh tokens change nothing.
        let unknown = try await refresh(fixture, "flrr_made-up")
        #expect(unknown.status == 401 && unknown.body.contains("invalid_refresh_token"), "\(unknown.body)")
        let malformed = try await Curl.request(fixture.url + Endpoints.Auth.refresh.path, method: "POST", body: "{")
        #expect(malformed.status == 400, "\(malformed.body)")
    }

    /// Two CLIs refreshing the same sign-in at once take turns: neither trades a token the other spent.
    @Test func parallelCommandsShareOneRefresh() async throws {
        let fixture = try await ServerFixture(arguments: ["--access-token-seconds", "2"])
        let registered = try await fixture.flare(["auth", "register", "--email", "dev@example.com", "--password-stdin"],
                                                 stdin: "a long password\n")
        #expect(registered.status == 0, "\(registered.stderr)")
        try await Task.sleep(for: .seconds(2.5))
        let results = try await withThrowingTaskGroup(of: CommandResult.self) { group in
            for _ in 0..<6 { group.addTask { try await fixture.flare(["auth", "whoami"]) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for result in results { #expect(result.status == 0, "\(result.stderr)") }
        #expect(try await fixture.flare(["auth", "whoami"]).status == 0)
    }

    @Test func aReusedRefreshTokenCutsItsSignInsLiveSSHWithinASecond() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let stolen = try string(try fixture.cliConfig(), "refreshToken")
        let (ssh, log) = try await fixture.liveSSH()

        // The thief trades the stolen token first; the device's own later use of it is the reuse.
        let thief = try await refresh(fixture, stolen)
        #expect(thief.status == 200, "\(thief.body)")
        let thiefAccess = try #require(try FlareJSON.decoder().decode(AuthResponse.self, from: Data(thief.body.utf8)).accessToken)
        let started = Date()
        #expect(try await refresh(fixture, stolen).status == 401)
        #expect(await ssh.exited(timeout: 5) != nil, "\(log.contents())")
        let cut = Date().timeIntervalSince(started)
        #expect(cut < 1.0, "cut after \(cut)s")
        #expect(log.contents().contains("access revoked"), "\(log.contents())")
        // Neither the thief's new tokens nor the device's old ones work.
        #expect(try await Curl.request(fixture.url + "/api/me", headers: ["Authorization": "Bearer \(thiefAccess)"]).status == 401)
        let again = try await fixture.flare(["ssh", "dev", "--", "true"])
        #expect(again.status != 0)
    }

    @Test func signedInDevicesAreListedAndOneCanBeEnded() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        // A second device of the same account, with its own config directory.
        let laptop = ["FLARE_CONFIG_DIR": fixture.directory.path("laptop")]
        let login = try await fixture.flare(["auth", "login", "--email", "dev@example.com", "--password-stdin"],
                                            stdin: "a long password\n", environment: laptop)
        #expect(login.status == 0, "\(login.stderr)")
        let laptopSignIn = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(
            fileURLWithPath: fixture.directory.path("laptop/config.json")))) as? [String: Any])["signInId"] as? String

        let listed = try await fixture.flare(["auth", "sessions", "--json"])
        let signIns = try FlareJSON.decoder().decode([SignInInfo].self, from: Data(listed.stdout.utf8))
        #expect(signIns.count == 2, "\(listed.stdout) \(listed.stderr)")
        #expect(signIns.filter(\.current).map(\.id) == [try string(try fixture.cliConfig(), "signInId")])
        #expect(signIns.allSatisfy { $0.client.hasPrefix("flare/") && $0.address == "127.0.0.1" }, "\(signIns)")
        let table = try await fixture.flare(["auth", "sessions"])
        #expect(table.stdout.contains("(this one)") && table.stdout.contains("LAST USED"), "\(table.stdout)")

        // Another account cannot see or end them: its id is not found, and nothing changes.
        let otherToken = try await Curl.register(fixture.url, email: "other@example.com")
        let probe = try await Curl.request(fixture.url + Endpoints.Auth.revokeSignIn.at(try #require(laptopSignIn)).path,
                                           method: "DELETE", headers: ["Authorization": "Bearer \(otherToken)"])
        #expect(probe.status == 404, "\(probe.body)")
        #expect(try await fixture.flare(["auth", "whoami"], environment: laptop).status == 0)

        // Ending the laptop's sign-in signs it out there, and only there.
        let (ssh, log) = try await fixture.liveSSH(environment: laptop)
        let revoke = try await fixture.flare(["auth", "sessions", "revoke", try #require(laptopSignIn)])
        #expect(revoke.status == 0 && revoke.stdout.contains("closed 1 connection"), "\(revoke.stdout) \(revoke.stderr)")
        #expect(await ssh.exited(timeout: 5) != nil, "\(log.contents())")
        let laptopAgain = try await fixture.flare(["auth", "whoami"], environment: laptop)
        #expect(laptopAgain.status != 0, "\(laptopAgain.stdout)")
        #expect(try await fixture.flare(["auth", "whoami"]).status == 0)
        let remaining = try FlareJSON.decoder().decode([SignInInfo].self, from: Data(
            try await fixture.flare(["auth", "sessions", "--json"]).stdout.utf8))
        #expect(remaining.map(\.id) == signIns.filter(\.current).map(\.id))
        #expect(try await fixture.flare(["auth", "sessions", "revoke", "sgn_nothing"]).status != 0)

        // Signing out ends this device's sign-in too: its refresh token no longer works.
        let refreshToken = try string(try fixture.cliConfig(), "refreshToken")
        #expect(try await fixture.flare(["auth", "logout"]).status == 0)
        let afterLogout = try await refresh(fixture, refreshToken)
        #expect(afterLogout.status == 401 && afterLogout.body.contains("signed_out"), "\(afterLogout.body)")
    }
}
