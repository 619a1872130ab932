import FlareContracts
import FlareSystem
import Foundation
import Testing

/// The whole path a user takes: flare → flare-server (gateway embedded) → flare-agent, with OpenSSH.
@Suite(.serialized) struct EndToEndTests {
    /// Under both runtimes: the agent as a child process, and in a container.
    @Test(arguments: ["host", "docker"])
    func signUpStartSessionAndGetARealShell(runtime: String) async throws {
        let fixture = try await ServerFixture(runtime: runtime)
        try await fixture.signUpWithTemplate()

        let up = try await fixture.flare(["session", "up", "dev", "--template", "base"])
        #expect(up.status == 0, "\(up.stderr)")
        let listed = try await fixture.flare(["session", "list", "--json"])
        let sessions = try FlareJSON.decoder().decode([SessionInfo].self, from: Data(listed.stdout.utf8))
        #expect(sessions.map(\.name) == ["dev"])
        #expect(sessions.first?.state == .running)

        let exec = try await fixture.flare(["ssh", "dev", "--", "echo hi; exit 7"])
        #expect(exec.stdout == "hi\n")
        #expect(exec.status == 7)

        // A PTY of the local terminal's size, through the real ssh client and the gateway.
        let flare = TestProcess.binary("flare")
        let pty = try await TestProcess.run(
            ["script", "-qec", "stty cols 111 rows 37; '\(flare)' ssh dev -t -- 'tty; stty size'", "/dev/null"],
            environment: fixture.environment)
        #expect(pty.stdout.contains("/dev/pts/"), "\(pty.stdout) \(pty.stderr)")
        #expect(pty.stdout.contains("37 111"))

        // Bytes in and out are exact.
        var rng = SystemRandomNumberGenerator()
        let payload = Data((0..<2_000_000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let hashed = try await TestProcess.run([flare, "ssh", "dev", "--", "sha256sum"], environment: fixture.environment,
                                         stdin: payload)
        let local = try await TestProcess.run(["sha256sum"], stdin: payload)
        #expect(hashed.stdout.prefix(64) == local.stdout.prefix(64))

        // The agent's activity figures reach `flare session get`.
        #expect(try await fixture.flare(["ssh", "dev", "--", "head -c 300000 /dev/zero"]).stdoutData.count == 300_000)
        let active = await waitFor(timeout: 10) {
            guard let json = try? await fixture.flare(["session", "get", "dev", "--json"]).stdout,
                  let info = try? FlareJSON.decoder().decode(SessionInfo.self, from: Data(json.utf8)),
                  let activity = info.activity
            else { return false }
            return activity.bytesOut >= 300_000 && activity.bytesIn > 0 && activity.lastInputAt != nil
        }
        #expect(active)
        #expect(try await fixture.flare(["session", "get", "dev"]).stdout.contains("bytes in/out"))

        // The agent's log, from its file or its container's output.
        let logs = try await fixture.flare(["session", "logs", "dev", "--lines", "50"])
        #expect(logs.stdout.contains("serving SSH"), "\(logs.stdout) \(logs.stderr)")

        let stopped = try await fixture.flare(["session", "stop", "dev"])
        #expect(stopped.status == 0)
        // Connecting to a sleeping session wakes it, with no other step.
        let woke = try await fixture.flare(["ssh", "dev", "--", "echo awake"])
        #expect(woke.status == 0)
        #expect(woke.stdout == "awake\n")
        #expect(woke.stderr.contains("waking dev"))
        let events = try await fixture.flare(["session", "events", "dev", "--json"])
        let decoded = try FlareJSON.decoder().decode([SessionEvent].self, from: Data(events.stdout.utf8))
        #expect(decoded.map(\.toState) == [.created, .starting, .running, .stopping, .sleeping, .starting, .running])
        #expect(decoded.dropLast().last?.reason.contains("woken by a connection") == true)

        let deleted = try await fixture.flare(["session", "delete", "dev"])
        #expect(deleted.status == 0)
        let gone = try await fixture.flare(["session", "get", "dev"])
        #expect(gone.status == 1)
        #expect(gone.stderr.contains("not found"))
    }

    @Test(arguments: ["host", "docker"])
    func configSSHMakesPlainOpenSSHToolsWork(runtime: String) async throws {
        let fixture = try await ServerFixture(runtime: runtime)
        try await fixture.signUpWithTemplate()
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        let config = fixture.directory.path("ssh_config")
        let original = "Host example\n  HostName 127.0.0.1\n"
        try original.write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try await fixture.flare(["config-ssh", "--ssh-config", config]).status == 0)
        let written = try String(contentsOfFile: config, encoding: .utf8)
        #expect(written.contains("Host *.flare"))
        #expect(written.contains(original))
        #expect(try await fixture.flare(["config-ssh", "--ssh-config", config]).status == 0)
        #expect(try String(contentsOfFile: config, encoding: .utf8) == written, "config-ssh must be idempotent")

        let env = fixture.environment
        let ssh = try await TestProcess.run(["ssh", "-F", config, "-o", "BatchMode=yes", "dev.flare", "echo plain-ssh"],
                                      environment: env)
        #expect(ssh.stdout == "plain-ssh\n", "\(ssh.stderr)")
        let file = fixture.directory.path("payload")
        try Data((0..<100_000).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: file))
        #expect(try await TestProcess.run(["scp", "-F", config, "-o", "BatchMode=yes", file, "dev.flare:copied"],
                                    environment: env).status == 0)
        let batch = fixture.directory.path("batch")
        try "get copied \(file).back\n".write(toFile: batch, atomically: true, encoding: .utf8)
        #expect(try await TestProcess.run(["sftp", "-F", config, "-o", "BatchMode=yes", "-b", batch, "dev.flare"],
                                    environment: env).status == 0)
        #expect(FileManager.default.contentsEqual(atPath: file, andPath: file + ".back"))
        let rsync = try await TestProcess.run(["rsync", "-a", "-e", "ssh -F \(config) -o BatchMode=yes", file, "dev.flare:synced"],
                                        environment: env)
        #expect(rsync.status == 0, "\(rsync.stderr)")
        #expect(try await fixture.flare(["ssh", "dev", "--", "cmp copied synced && echo same"]).stdout == "same\n")

        #expect(try await fixture.flare(["config-ssh", "--ssh-config", config, "--remove"]).status == 0)
        #expect(try String(contentsOfFile: config, encoding: .utf8) == original)
    }

    @Test func revokingOrDeletingCutsLiveConnectionsWithinASecond() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate()
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        func liveSSH() async throws -> (SpawnedProcess, TemporaryFile) {
            let log = try TemporaryFile()
            let ssh = try SpawnedProcess([TestProcess.binary("flare"), "ssh", "dev", "--", "echo connected; sleep 60"],
                                         environment: fixture.environment, stdin: nil,
                                         stdout: log.handle.fileDescriptor, stderr: log.handle.fileDescriptor)
            #expect(await waitFor(timeout: 15) { log.contents().contains("connected") })
            return (ssh, log)
        }

        let (first, _) = try await liveSSH()
        var started = Date()
        #expect(try await fixture.flare(["session", "revoke", "dev"]).stdout.contains("closed 1 connection"))
        #expect(await first.exited(timeout: 5) != nil)
        let revokeCut = Date().timeIntervalSince(started)
        #expect(revokeCut < 1.0, "cut after \(revokeCut)s")

        // Revocation ends existing tokens, not access: a new connection works.
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo again"]).stdout == "again\n")

        let (second, _) = try await liveSSH()
        started = Date()
        let deleteLog = try TemporaryFile()
        let delete = try SpawnedProcess([TestProcess.binary("flare"), "session", "delete", "dev"],
                                        environment: fixture.environment, stdin: nil,
                                        stdout: deleteLog.handle.fileDescriptor, stderr: deleteLog.handle.fileDescriptor)
        #expect(await second.exited(timeout: 5) != nil)
        let deleteCut = Date().timeIntervalSince(started)
        #expect(deleteCut < 1.0, "cut after \(deleteCut)s")
        #expect(await delete.exited(timeout: 30) == 0, "\(deleteLog.contents())")
    }

    @Test func anUnregisteredKeyCannotGetInThroughTheGateway() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate()
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        // Registers the CLI's own key and pins the host key.
        #expect(try await fixture.flare(["ssh", "dev", "--", "true"]).status == 0)

        let stranger = fixture.directory.path("stranger")
        #expect(try await TestProcess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", stranger]).status == 0)
        let cli = fixture.directory.path("cli")
        let proxy = "'\(TestProcess.binary("flare"))' ssh-proxy dev"
        let result = try await TestProcess.run([
            "ssh", "-F", "/dev/null", "-i", stranger, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=\(cli)/known_hosts", "-o", "StrictHostKeyChecking=yes",
            "-o", "HostKeyAlias=flare-\(try await sessionId(fixture))", "-o", "ProxyCommand=\(proxy)", "flare@dev.flare",
            "echo should-not-run",
        ], environment: fixture.environment)
        #expect(result.status == 255)
        #expect(result.stderr.contains("Permission denied"))
        #expect(!result.stdout.contains("should-not-run"))
    }

    @Test func agentThatDiesMarksTheSessionFailed() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate()
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        let killed = try await TestProcess.run(["pkill", "-KILL", "-f", "--", "--session \(try await sessionId(fixture))"])
        #expect(killed.status == 0)
        let failed = await waitFor(timeout: 10) {
            (try? await fixture.flare(["session", "get", "dev", "--json"]).stdout.contains("\"state\" : \"failed\"")) == true
        }
        #expect(failed)
        let info = try await fixture.flare(["session", "get", "dev"])
        #expect(info.stdout.contains("killed by signal"))
        // And it can be started again.
        #expect(try await fixture.flare(["session", "start", "dev"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo back"]).stdout == "back\n")
    }

    @Test func restartedServerFindsItsSessionsAgain() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate()
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["session", "up", "lost", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo before > note"]).status == 0)
        let lostId = try await sessionId(fixture, "lost")

        try await fixture.crashAndRestart {
            // While the server is down, one agent dies too.
            let killed = try await TestProcess.run(["pkill", "-KILL", "-f", "--", "--session \(lostId)"])
            #expect(killed.status == 0)
        }

        let kept = try await info(fixture, "dev")
        #expect(kept.state == .running)
        #expect(try await fixture.flare(["ssh", "dev", "--", "cat note"]).stdout == "before\n")
        let lost = try await info(fixture, "lost")
        #expect(lost.state == .failed)
        #expect(lost.stateReason.contains("lost while the control plane was down"))
    }

    func info(_ fixture: ServerFixture, _ name: String) async throws -> SessionInfo {
        let json = try await fixture.flare(["session", "get", name, "--json"]).stdout
        return try FlareJSON.decoder().decode(SessionInfo.self, from: Data(json.utf8))
    }

    func sessionId(_ fixture: ServerFixture, _ name: String = "dev") async throws -> String {
        try await fixture.sessionId(name)
    }
}
