import FlareSystem
import Foundation
import Testing

/// Session semantics and policy: env allow-list, crypto, multiplexing.
@Suite(.serialized) struct AgentSessionSemanticsTests {
    @Test func onlyAllowedVariablesPassFromTheClient() async throws {
        let fixture = try await AgentFixture()
        let result = try await TestProcess.run(try fixture.ssh(["-o", "SendEnv=LANG LC_FLARE_TEST SECRET_THING"])
            + ["echo \"$LANG|$LC_FLARE_TEST|${SECRET_THING:-unset}\""],
            environment: ["LANG": "en_US.UTF-8", "LC_FLARE_TEST": "yes", "SECRET_THING": "leak"])
        #expect(result.stdout == "en_US.UTF-8|yes|unset\n")
    }

    @Test func clientKeepalivesAreAnswered() async throws {
        let fixture = try await AgentFixture()
        // The client gives up after 2 unanswered keepalives, one a second; the command outlives that.
        let result = try await TestProcess.run(try fixture.ssh([
            "-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2",
        ]) + ["sleep 4; echo still-connected"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "still-connected\n")
    }

    @Test func onlyModernAlgorithmsAreOffered() async throws {
        let fixture = try await AgentFixture()
        let negotiated = try await TestProcess.run(try fixture.ssh(["-v"]) + ["true"])
        #expect(negotiated.status == 0)
        #expect(negotiated.stderr.contains("kex: algorithm: curve25519-sha256"))
        #expect(negotiated.stderr.contains("host key algorithm: ssh-ed25519"))
        let etm = try await TestProcess.run(try fixture.ssh(["-v", "-o", "Ciphers=aes256-ctr"]) + ["true"])
        #expect(etm.status == 0)
        #expect(etm.stderr.contains("MAC: hmac-sha2-256-etm@openssh.com"))
        // MACs only matter with a non-AEAD cipher, so that case pins one.
        for options in [["KexAlgorithms=ecdh-sha2-nistp256,diffie-hellman-group14-sha1"],
                        ["Ciphers=aes128-cbc,3des-cbc"],
                        ["Ciphers=aes128-ctr", "MACs=hmac-sha1,umac-64@openssh.com,hmac-sha2-256"],
                        ["HostKeyAlgorithms=ecdsa-sha2-nistp256,rsa-sha2-256"]] {
            let refused = try await TestProcess.run(try fixture.ssh(options.flatMap { ["-o", $0] }) + ["true"])
            #expect(refused.status == 255, "\(options) was accepted")
            // Which side notices first is a race: the client says "no matching …", or the agent
            // (which found no match in the client's offer) has closed before sending its own.
            #expect(refused.stderr.contains("no matching") || refused.stderr.contains("Connection closed"),
                    "\(refused.stderr)")
        }
    }

    @Test func multiplexedChannelsDoNotWaitForAStalledOne() async throws {
        let fixture = try await AgentFixture()
        let control = fixture.directory.path("cm.sock")
        let master = try BackgroundProcess(fixture.ssh(["-M", "-S", control, "-o", "ControlPersist=no", "-N"]))
        defer { master.stop() }
        #expect(await waitFor { FileManager.default.fileExists(atPath: control) }, "\(master.output)")
        // One channel produces far more than it can send: its reader never reads.
        var neverRead: [Int32] = [-1, -1]
        #expect(pipe(&neverRead) == 0)
        let stalled = try SpawnedProcess(try fixture.ssh(["-S", control]) + ["head -c 200000000 /dev/zero"],
                                         stdin: nil, stdout: neverRead[1], stderr: neverRead[1])
        defer {
            stalled.signal(SIGKILL)
            _ = stalled.wait(timeout: 5)  // a killed child: reaped at once
            close(neverRead[0])
            close(neverRead[1])
        }
        try await Task.sleep(for: .milliseconds(500))
        let results = ResultBox(count: 10)
        let started = Date()
        let command = try fixture.ssh(["-S", control])
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<10 {
                group.addTask { results.set(index, try? await TestProcess.run(command + ["echo channel-\(index)"], timeout: 20)) }
            }
        }
        for index in 0..<10 {
            #expect(results.get(index)?.stdout == "channel-\(index)\n")
        }
        #expect(Date().timeIntervalSince(started) < 15)
        #expect(stalled.isRunning, "the stalled command should still be waiting for its reader")
    }
}
