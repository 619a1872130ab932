import FlareSystem
import Foundation
import Testing

/// The agent against the real OpenSSH client.
@Suite(.serialized) struct AgentSSHTests {
    @Test func execReportsOutputAndExactExitStatus() throws {
        let fixture = try AgentFixture()
        let result = try TestProcess.run(try fixture.ssh() + ["echo out; echo err >&2; exit 7"])
        #expect(result.status == 7)
        #expect(result.stdout == "out\n")
        #expect(result.stderr.contains("err"))
    }

    @Test func stdinReachesTheCommandByteForByte() throws {
        let fixture = try AgentFixture()
        var rng = SystemRandomNumberGenerator()
        let payload = Data((0..<3_000_000).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let echoed = try TestProcess.run(try fixture.ssh() + ["cat"], stdin: payload)
        #expect(echoed.status == 0)
        #expect(echoed.stdoutData == payload)
        let counted = try TestProcess.run(try fixture.ssh() + ["wc -c"], stdin: payload)
        #expect(counted.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "3000000")
        let hashed = try TestProcess.run(try fixture.ssh() + ["sha256sum | cut -d' ' -f1"], stdin: payload)
        let local = try TestProcess.run(["sha256sum"], stdin: payload).stdout.split(separator: " ").first ?? ""
        #expect(hashed.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == String(local))
    }

    @Test func commandKilledBySignalEndsLikeOpenSSH() throws {
        let fixture = try AgentFixture()
        // OpenSSH's client exits 255 when the server reports exit-signal instead of exit-status.
        let result = try TestProcess.run(try fixture.ssh(["-v"]) + ["kill -TERM $$"])
        #expect(result.status == 255)
        #expect(result.stderr.contains("exit-signal"))
    }

    @Test func ptyShellGetsTerminalAndRequestedSize() throws {
        let fixture = try AgentFixture()
        let ssh = try fixture.ssh(["-tt"]).map { "'\($0)'" }.joined(separator: " ")
        let script = "stty cols 97 rows 31; \(ssh) 'tty; stty size; echo TERM=$TERM'"
        let result = try TestProcess.run(["script", "-qec", script, "/dev/null"], environment: ["TERM": "xterm-256color"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("/dev/pts/"))
        #expect(result.stdout.contains("31 97"))
        #expect(result.stdout.contains("TERM=xterm-256color"))
    }

    @Test func unregisteredKeyIsRefused() throws {
        let fixture = try AgentFixture()
        let result = try TestProcess.run(try fixture.ssh(key: "otherkey") + ["echo should-not-run"])
        #expect(result.status == 255)
        #expect(result.stderr.contains("Permission denied"))
        #expect(!result.stdout.contains("should-not-run"))
        // The refusal is logged with the key's fingerprint.
        let fingerprint = try TestProcess.run(["ssh-keygen", "-lf", fixture.directory.path("otherkey.pub")])
            .stdout.split(separator: " ")[1]
        #expect(waitFor(timeout: 5) { fixture.agent.output.contains(String(fingerprint)) }, "\(fixture.agent.output)")
    }

    @Test func shellRunsInHomeWithLoginEnvironment() throws {
        let fixture = try AgentFixture()
        let result = try TestProcess.run(try fixture.ssh() + ["pwd; echo $HOME; echo $USER; echo $PATH"])
        let lines = result.stdout.split(separator: "\n").map(String.init)
        let home = fixture.directory.path("root") + "/home/flare"
        #expect(lines.first == home)
        #expect(lines.dropFirst().first == home)
        #expect(lines.count == 4 && !lines[2].isEmpty && lines[3].contains("/usr/bin"))
    }

    @Test func childrenInheritNoAgentSockets() throws {
        let fixture = try AgentFixture()
        // Any descriptor beyond stdin/stdout/stderr that is a socket would be libssh's.
        let result = try TestProcess.run(try fixture.ssh() + ["ls -l /proc/$$/fd | grep -c socket || true"])
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0")
    }

    @Test func manyConcurrentConnections() throws {
        let fixture = try AgentFixture()
        let command = try fixture.ssh()
        let outputs = ResultBox(count: 100)
        // OS threads, not Swift tasks: each waits on a real ssh process.
        DispatchQueue.concurrentPerform(iterations: 100) { index in
            outputs.set(index, try? TestProcess.run(command + ["echo conn-\(index)"], timeout: 90))
        }
        for index in 0..<100 {
            #expect(outputs.get(index)?.status == 0)
            #expect(outputs.get(index)?.stdout == "conn-\(index)\n")
        }
    }
}

extension AgentSSHTests {
    @Test func clientKilledMidTransferLeavesNothingBehind() throws {
        let fixture = try AgentFixture()
        #expect(try TestProcess.run(try fixture.ssh() + ["true"]).status == 0)
        let before = fixture.resourceCounts()
        let output = try TemporaryFile()
        let upload = try SpawnedProcess(["sh", "-c", "head -c 2000000000 /dev/zero | "
                                            + (try fixture.ssh()).map { "'\($0)'" }.joined(separator: " ")
                                            + " 'cat > /dev/null'"],
                                        stdin: nil, stdout: output.handle.fileDescriptor,
                                        stderr: output.handle.fileDescriptor)
        let download = try SpawnedProcess(try fixture.ssh() + ["head -c 2000000000 /dev/zero"], stdin: nil,
                                          stdout: output.handle.fileDescriptor, stderr: output.handle.fileDescriptor)
        usleep(700_000)
        #expect(fixture.resourceCounts().children >= 2, "both transfers should be running")
        upload.signal(SIGKILL)
        download.signal(SIGKILL)
        _ = upload.wait(timeout: 5)
        _ = download.wait(timeout: 5)
        // Generous under load: hung-up children get 5 s before SIGKILL, then must be reaped.
        let settled = waitFor(timeout: 40) {
            let now = fixture.resourceCounts()
            return now.descriptors == before.descriptors && now.children == before.children
        }
        #expect(settled, "before \(before), after \(fixture.resourceCounts())")
        #expect(try TestProcess.run(try fixture.ssh() + ["echo still-serving"]).stdout == "still-serving\n")
    }

    @Test func sigtermLetsRunningCommandsFinishThenDisconnectsTheRest() throws {
        let fixture = try AgentFixture(arguments: ["--grace-seconds", "2"])
        let finishing = try TemporaryFile(), hanging = try TemporaryFile()
        let short = try SpawnedProcess(try fixture.ssh() + ["sleep 1; echo finished"], stdin: nil,
                                       stdout: finishing.handle.fileDescriptor, stderr: finishing.handle.fileDescriptor)
        let long = try SpawnedProcess(try fixture.ssh() + ["sleep 60"], stdin: nil,
                                      stdout: hanging.handle.fileDescriptor, stderr: hanging.handle.fileDescriptor)
        #expect(waitFor(timeout: 10) { fixture.resourceCounts().children >= 2 })
        let stopped = Date()
        kill(fixture.agent.pid, SIGTERM)
        #expect(short.wait(timeout: 10) == 0)
        #expect(finishing.contents().contains("finished"))
        // New connections are refused once the agent is stopping.
        let refused = try TestProcess.run(try fixture.ssh() + ["true"])
        #expect(refused.status == 255)
        // The never-ending command is cut after the grace period, and the agent exits cleanly.
        #expect(long.wait(timeout: 10) != nil)
        #expect(fixture.agent.child.wait(timeout: 10) == 0)
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
