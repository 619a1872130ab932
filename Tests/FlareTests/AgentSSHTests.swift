import FlareSystem
import Foundation
import Testing

/// The agent against the real OpenSSH client.
@Suite(.serialized) struct AgentSSHTests {
    @Test func execReportsOutputAndExactExitStatus() async throws {
        let fixture = try await AgentFixture()
        let result = try await TestProcess.run(try fixture.ssh() + ["echo out; echo err >&2; exit 7"])
        #expect(result.status == 7)
        #expect(result.stdout == "out\n")
        #expect(result.stderr.contains("err"))
    }

    @Test func stdinReachesTheCommandByteForByte() async throws {
        let fixture = try await AgentFixture()
        var rng = SystemRandomNumberGenerator()
        let payload = Data((0..<3_000_000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let echoed = try await TestProcess.run(try fixture.ssh() + ["cat"], stdin: payload)
        #expect(echoed.status == 0)
        #expect(echoed.stdoutData == payload)
        let counted = try await TestProcess.run(try fixture.ssh() + ["wc -c"], stdin: payload)
        #expect(counted.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3000000")
        let hashed = try await TestProcess.run(try fixture.ssh() + ["sha256sum | cut -d' ' -f1"], stdin: payload)
        let local = try await TestProcess.run(["sha256sum"], stdin: payload).stdout.split(separator: " ").first ?? ""
        #expect(hashed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(local))
    }

    @Test func commandKilledBySignalEndsLikeOpenSSH() async throws {
        let fixture = try await AgentFixture()
        // OpenSSH's client exits 255 when the server reports exit-signal instead of exit-status.
        let result = try await TestProcess.run(try fixture.ssh(["-v"]) + ["kill -TERM $$"])
        #expect(result.status == 255)
        #expect(result.stderr.contains("exit-signal"))
    }

    @Test func ptyShellGetsTerminalAndRequestedSize() async throws {
        let fixture = try await AgentFixture()
        let ssh = try fixture.ssh(["-tt"]).map { "'\($0)'" }.joined(separator: " ")
        let script = "stty cols 97 rows 31; \(ssh) 'tty; stty size; echo TERM=$TERM'"
        let result = try await TestProcess.run(["script", "-qec", script, "/dev/null"], environment: ["TERM": "xterm-256color"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("/dev/pts/"))
        #expect(result.stdout.contains("31 97"))
        #expect(result.stdout.contains("TERM=xterm-256color"))
    }

    @Test func unregisteredKeyIsRefused() async throws {
        let fixture = try await AgentFixture()
        let result = try await TestProcess.run(try fixture.ssh(key: "otherkey") + ["echo should-not-run"])
        #expect(result.status == 255)
        #expect(result.stderr.contains("Permission denied"))
        #expect(!result.stdout.contains("should-not-run"))
        // The refusal is logged with the key's fingerprint.
        let fingerprint = try await TestProcess.run(["ssh-keygen", "-lf", fixture.directory.path("otherkey.pub")])
            .stdout.split(separator: " ")[1]
        #expect(await waitFor(timeout: 5) { fixture.agent.output.contains(String(fingerprint)) }, "\(fixture.agent.output)")
    }

    @Test func shellRunsInHomeWithLoginEnvironment() async throws {
        let fixture = try await AgentFixture()
        let result = try await TestProcess.run(try fixture.ssh() + ["pwd; echo $HOME; echo $USER; echo $PATH"])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let home = fixture.directory.path("root") + "/home/flare"
        #expect(lines.first == home)
        #expect(lines.dropFirst().first == home)
        #expect(lines.count == 4 && !lines[2].isEmpty && lines[3].contains("/usr/bin"))
    }

    @Test func childrenInheritNoAgentSockets() async throws {
        let fixture = try await AgentFixture()
        // Any descriptor beyond stdin/stdout/stderr that is a socket would be libssh's.
        let result = try await TestProcess.run(try fixture.ssh() + ["ls -l /proc/$$/fd | grep -c socket || true"])
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test func manyConcurrentConnections() async throws {
        let fixture = try await AgentFixture()
        let command = try fixture.ssh()
        let outputs = ResultBox(count: 100)
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<100 {
                group.addTask { outputs.set(index, try? await TestProcess.run(command + ["echo conn-\(index)"], timeout: 90)) }
            }
        }
        for index in 0..<100 {
            #expect(outputs.get(index)?.status == 0)
            #expect(outputs.get(index)?.stdout == "conn-\(index)\n")
        }
    }
}

extension AgentSSHTests {
    @Test func clientKilledMidTransferLeavesNothingBehind() async throws {
        let fixture = try await AgentFixture()
        #expect(try await TestProcess.run(try fixture.ssh() + ["true"]).status == 0)
        let before = await fixture.resourceCounts()
        let output = try TemporaryFile()
        let upload = try SpawnedProcess(["sh", "-c", "head -c 2000000000 /dev/zero | "
                                            + (try fixture.ssh()).map { "'\($0)'" }.joined(separator: " ")
                                            + " 'cat > /dev/null'"],
                                        stdin: nil, stdout: output.handle.fileDescriptor,
                                        stderr: output.handle.fileDescriptor)
        let download = try SpawnedProcess(try fixture.ssh() + ["head -c 2000000000 /dev/zero"], stdin: nil,
                                          stdout: output.handle.fileDescriptor, stderr: output.handle.fileDescriptor)
        try await Task.sleep(for: .milliseconds(700))
        #expect(await fixture.resourceCounts().children >= 2, "both transfers should be running")
        upload.signal(SIGKILL)
        download.signal(SIGKILL)
        _ = await upload.exited(timeout: 5)
        _ = await download.exited(timeout: 5)
        // Generous under load: hung-up children get 5 s before SIGKILL, then must be reaped.
        let settled = await waitFor(timeout: 40) {
            let now = await fixture.resourceCounts()
            return now.descriptors == before.descriptors && now.children == before.children
        }
        let after = await fixture.resourceCounts()
        #expect(settled, "before \(before), after \(after)")
        #expect(try await TestProcess.run(try fixture.ssh() + ["echo still-serving"]).stdout == "still-serving\n")
    }

    @Test func sigtermLetsRunningCommandsFinishThenDisconnectsTheRest() async throws {
        let fixture = try await AgentFixture(arguments: ["--grace-seconds", "2"])
        let finishing = try TemporaryFile(), hanging = try TemporaryFile()
        let short = try SpawnedProcess(try fixture.ssh() + ["sleep 1; echo finished"], stdin: nil,
                                       stdout: finishing.handle.fileDescriptor, stderr: finishing.handle.fileDescriptor)
        let long = try SpawnedProcess(try fixture.ssh() + ["sleep 60"], stdin: nil,
                                      stdout: hanging.handle.fileDescriptor, stderr: hanging.handle.fileDescriptor)
        #expect(await waitFor(timeout: 10) { await fixture.resourceCounts().children >= 2 })
        let stopped = Date()
        kill(fixture.agent.pid, SIGTERM)
        #expect(await short.exited(timeout: 10) == 0)
        #expect(finishing.contents().contains("finished"))
        // New connections are refused once the agent is stopping.
        let refused = try await TestProcess.run(try fixture.ssh() + ["true"])
        #expect(refused.status == 255)
        // The never-ending command is cut after the grace period, and the agent exits cleanly.
        #expect(await long.exited(timeout: 10) != nil)
        #expect(await fixture.agent.child.exited(timeout: 10) == 0)
        #expect(Date().timeIntervalSince(stopped) < 8)
    }
}

final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [CommandResult?]

    init(count: Int) { results = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ result: CommandResult?) { lock.withLock { results[index] = result } }
    func get(_ index: Int) -> CommandResult? { lock.withLock { results[index] } }
}
