import Foundation

/// A standalone `flare-agent serve` with fresh host and user keys, and an `ssh` command line for it.
final class AgentFixture {
    let directory: TemporaryDirectory
    let agent: BackgroundProcess
    let port: Int

    init(arguments extra: [String] = []) async throws {
        directory = try TemporaryDirectory()
        for name in ["hostkey", "userkey", "otherkey"] {
            let result = try await TestProcess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", directory.path(name)])
            guard result.status == 0 else { throw FixtureError("ssh-keygen failed: \(result.stderr)") }
        }
        try FileManager.default.copyItem(atPath: directory.path("userkey.pub"), toPath: directory.path("authorized_keys"))
        let addressFile = directory.path("address")
        agent = try BackgroundProcess([
            TestProcess.binary("flare-agent"), "serve", "--listen", "tcp:127.0.0.1:0",
            "--host-key", directory.path("hostkey"), "--authorized-keys", directory.path("authorized_keys"),
            "--root", directory.path("root"), "--address-file", addressFile,
        ] + extra)
        guard await waitFor({ FileManager.default.fileExists(atPath: addressFile) }),
              let text = try? String(contentsOfFile: addressFile, encoding: .utf8),
              let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":").last ?? "")
        else { throw FixtureError("the agent did not start: \(agent.output)") }
        self.port = port
    }

    /// `ssh` to the agent with `key`, known_hosts pinned to the agent's host key. `extra` options
    /// come first, so they win over the defaults (OpenSSH keeps the first value of an option).
    func ssh(_ extra: [String] = [], key: String = "userkey") throws -> [String] {
        let hostKey = try String(contentsOfFile: directory.path("hostkey.pub"), encoding: .utf8)
            .split(separator: " ").prefix(2).joined(separator: " ")
        let knownHosts = directory.path("known_hosts")
        try "[127.0.0.1]:\(port) \(hostKey)\n".write(toFile: knownHosts, atomically: true, encoding: .utf8)
        return ["ssh", "-F", "/dev/null"] + extra + [
            "-p", "\(port)", "-i", directory.path(key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
            "-o", "UserKnownHostsFile=\(knownHosts)", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10", "flare@127.0.0.1",
        ]
    }

    /// Open descriptors and child processes of the agent, for leak checks.
    func resourceCounts() async -> (descriptors: Int, children: Int) {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd").count) ?? -1
        let children = (try? await TestProcess.run(["pgrep", "-P", "\(agent.pid)"]).stdout
            .split(separator: "\n").count) ?? -1
        return (fds, children)
    }

    deinit { agent.stop() }
}

struct FixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
