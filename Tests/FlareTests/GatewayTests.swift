import FlareContracts
import FlareSystem
import Foundation
import Testing

/// Live access enforcement, standalone gateways, metrics and port forwarding, end to end.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct GatewayTests {
    /// `flare ssh dev -- CMD` left running in the background, with its output.
    @Test func logoutEverywhereCutsLiveConnectionsAndSaysWhy() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let (ssh, log) = try await fixture.liveSSH()

        let started = Date()
        let logout = try await fixture.flare(["auth", "logout", "--all"])
        #expect(logout.stdout.contains("closed 1 connection"), "\(logout.stdout) \(logout.stderr)")
        #expect(await ssh.exited(timeout: 5) != nil)
        let cut = Date().timeIntervalSince(started)
        #expect(cut < 1.0, "cut after \(cut)s")
        #expect(log.contents().contains("the connection to dev was cut: access revoked"), "\(log.contents())")

        // Signed out: no new connection, and the CLI says what to do.
        let again = try await fixture.flare(["ssh", "dev", "--", "true"])
        #expect(again.status != 0)
        #expect(again.stderr.contains("not signed in"))
    }

    @Test func aConnectionWithoutTrafficIsClosedAfterTheIdleTimeout() async throws {
        let fixture = try await ServerFixture.withRunningSession(arguments: ["--idle-connection-seconds", "2"])
        let started = Date()
        let (ssh, log) = try await fixture.liveSSH()
        #expect(await ssh.exited(timeout: 15) != nil)
        let lasted = Date().timeIntervalSince(started)
        #expect(lasted >= 2 && lasted < 8, "closed after \(lasted)s")
        #expect(log.contents().contains("without traffic"), "\(log.contents())")
        // Traffic keeps a connection open past the timeout.
        let busy = try await fixture.flare(["ssh", "dev", "--", "for i in 1 2 3 4 5; do echo tick; sleep 1; done"])
        #expect(busy.stdout == String(repeating: "tick\n", count: 5), "\(busy.stderr)")
    }

    @Test func twoStandaloneGatewaysBothEnforceOneRevocation() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let gateways = [try await StandaloneGateway(fixture, name: "gw1"), try await StandaloneGateway(fixture, name: "gw2")]

        // Plain ssh and a browser terminal work through each gateway.
        for gateway in gateways {
            let result = try await fixture.flare(["ssh", "dev", "--", "echo via-\(gateway.name)"],
                                           environment: ["FLARE_GATEWAY_URL": gateway.url])
            #expect(result.stdout == "via-\(gateway.name)\n", "\(result.stderr) \(gateway.process.output)")
        }
        let api = fixture
        let session = try await fixture.sessionId()
        let token = try await api.runtimeToken(session: session, purpose: .terminal)
        try await TerminalDriver.run(gateway: gateways[1].url, session: session, token: token) { terminal in
            #expect(await terminal.waitForMessage("ready") != nil)
            try await terminal.type("echo terminal-via-gw2\r")
            #expect(await terminal.waitForOutput { $0.contains("terminal-via-gw2\r\n") }, "\(terminal.text)")
        }

        var live: [(SpawnedProcess, TemporaryFile)] = []
        for gateway in gateways { live.append(try await fixture.liveSSH(environment: ["FLARE_GATEWAY_URL": gateway.url])) }
        let started = Date()
        #expect(try await fixture.flare(["session", "revoke", "dev"]).status == 0)
        for (ssh, log) in live {
            #expect(await ssh.exited(timeout: 5) != nil)
            #expect(log.contents().contains("access revoked"), "\(log.contents())")
        }
        let cut = Date().timeIntervalSince(started)
        #expect(cut < 1.0, "both cut after \(cut)s")

        // A forged token is refused by a standalone gateway before any upgrade.
        let (status, body) = try await RawHTTP.get(gateways[0].url, Endpoints.Gateway.ssh.at(session).query(["token": "frt1.x.y"]).path)
        #expect(status == 401)
        #expect(body.contains("token_malformed"))
    }

    @Test func sshExplainsAnUnreachableOrRefusingGatewayInWords() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let unreachable = try await fixture.flare(["ssh", "dev", "--", "true"],
                                            environment: ["FLARE_GATEWAY_URL": "http://127.0.0.1:\(try freePort())"])
        #expect(unreachable.status != 0)
        #expect(unreachable.stderr.contains("cannot reach the gateway"), "\(unreachable.stderr)")

        // A gateway of another control plane checks tokens with another key.
        let other = try await ServerFixture()
        let gateway = try await StandaloneGateway(other, name: "elsewhere")
        let refused = try await fixture.flare(["ssh", "dev", "--", "true"], environment: ["FLARE_GATEWAY_URL": gateway.url])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("the gateway refused the connection to dev: the runtime token's signature"),
                "\(refused.stderr)")
    }

    @Test func metricsCountConnectionsBytesRefusalsAndLatency() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        #expect(try await fixture.flare(["ssh", "dev", "--", "head -c 100000 /dev/zero"]).stdoutData.count == 100_000)
        let session = try await fixture.sessionId()
        _ = try await RawHTTP.get(fixture.url, Endpoints.Gateway.ssh.at(session).query(["token": "frt1.x.y"]).path)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "true"]).status == 0)

        // The gateway finishes its side of a connection a moment after the client has exited.
        var (status, metrics) = (UInt(0), "")
        func value(_ line: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix(line + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        _ = await waitForAsync(timeout: 10) {
            (status, metrics) = (try? await RawHTTP.get(fixture.url, "/metrics")) ?? (0, "")
            return value(#"flare_gateway_open_connections{purpose="ssh"}"#) == 0
        }
        #expect(status == 200)
        #expect((value(#"flare_gateway_relayed_bytes_total{direction="from_agent"}"#) ?? 0) >= 100_000, "\(metrics)")
        #expect((value(#"flare_gateway_relayed_bytes_total{direction="to_agent"}"#) ?? 0) > 0)
        #expect(value(#"flare_gateway_authorization_failures_total{reason="token_malformed"}"#) == 1)
        #expect(value("flare_gateway_connect_seconds_count") == 2)
        #expect(value("flare_gateway_wake_seconds_count") == 1)
        #expect(value(#"flare_gateway_open_connections{purpose="ssh"}"#) == 0)
        #expect(value(#"flare_sessions{state="running"}"#) == 1)
    }

    @Test func portForwardReachesAPortInTheSession() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        // The session has its own loopback (its own network namespace): the site runs inside it.
        let remotePort = try freePort(), localPort = try freePort()
        let web = try await fixture.flare(["ssh", "dev", "--", """
            mkdir -p ~/site && echo 'hello through the tunnel' > ~/site/index.txt && \
            setsid -f python3 -m http.server --bind 127.0.0.1 --directory ~/site \(remotePort) >/dev/null 2>&1; \
            for i in $(seq 50); do curl -sf http://127.0.0.1:\(remotePort)/index.txt >/dev/null && break; sleep 0.1; done; \
            echo serving
            """])
        #expect(web.stdout == "serving\n", "\(web.stderr)")
        let unreachable = try await TestProcess.run(["curl", "-sf", "--max-time", "2", "http://127.0.0.1:\(remotePort)/index.txt"])
        #expect(unreachable.status != 0, "the session's loopback is not the host's")

        let log = try TemporaryFile()
        let forward = try SpawnedProcess([TestProcess.binary("flare"), "port-forward", "dev", "\(localPort):\(remotePort)"],
                                         environment: fixture.environment, stdin: nil,
                                         stdout: log.handle.fileDescriptor, stderr: log.handle.fileDescriptor)
        defer {
            forward.signal(SIGTERM)
            _ = forward.wait(timeout: 5)  // cleanup when the test fails early
        }
        #expect(await waitFor(timeout: 15) { log.contents().contains("Ctrl-C") })
        var fetched = ""
        let reached = await waitFor(timeout: 15) {
            fetched = (try? await TestProcess.run(["curl", "-sf", "http://127.0.0.1:\(localPort)/index.txt"]).stdout) ?? ""
            return !fetched.isEmpty
        }
        #expect(reached, "\(log.contents())")
        #expect(fetched == "hello through the tunnel\n")

        let bad = try await fixture.flare(["port-forward", "dev", "80:99999"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("not a port"))
    }
}

/// A `flare-gateway` process beside a fixture's server.
final class StandaloneGateway {
    let name: String
    let process: BackgroundProcess
    let url: String

    init(_ fixture: ServerFixture, name: String) async throws {
        self.name = name
        let portFile = fixture.directory.path("\(name).port")
        process = try BackgroundProcess([
            TestProcess.binary("flare-gateway"), "--control-plane", fixture.url, "--port", "0",
            "--token-file", fixture.directory.path("data/gateway-token"), "--data-dir", fixture.directory.path(name),
            "--name", name, "--port-file", portFile,
        ])
        guard await waitFor({ (try? String(contentsOfFile: portFile, encoding: .utf8))?.isEmpty == false }),
              let port = try? String(contentsOfFile: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        else { throw FixtureError("flare-gateway did not start: \(process.output)") }
        url = "http://127.0.0.1:\(port)"
    }
}
