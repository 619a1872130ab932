import Foundation
import Testing

/// `ssh -L`, `ssh -R` and `ssh -A` against the agent.
@Suite(.serialized) struct AgentForwardingTests {
    @Test func localForwardReachesAServerInsideTheSession() async throws {
        let fixture = try await AgentFixture()
        let inside = try freePort(), local = try freePort()
        let server = "exec socat TCP-LISTEN:\(inside),bind=127.0.0.1,reuseaddr,fork SYSTEM:'echo inside-session'"
        let tunnel = try BackgroundProcess(fixture.ssh(["-L", "\(local):127.0.0.1:\(inside)"])
            + [server])
        defer { tunnel.stop() }
        var answer = ""
        let reached = await waitFor(timeout: 15) {
            answer = (try? await TestProcess.run(["socat", "-u", "TCP:127.0.0.1:\(local)", "-"], timeout: 5).stdout) ?? ""
            return answer == "inside-session\n"
        }
        #expect(reached, "got '\(answer)'; \(tunnel.output)")
    }

    @Test func remoteForwardReachesAServerOnTheClientSide() async throws {
        let fixture = try await AgentFixture()
        let clientPort = try freePort(), sessionPort = try freePort()
        let server = try BackgroundProcess([
            "socat", "TCP-LISTEN:\(clientPort),bind=127.0.0.1,reuseaddr,fork", "SYSTEM:echo from-client",
        ])
        defer { server.stop() }
        #expect(await waitFor { (try? await TestProcess.run(["socat", "-u", "TCP:127.0.0.1:\(clientPort)", "-"]).status) == 0 })
        let result = try await TestProcess.run(try fixture.ssh([
            "-o", "ExitOnForwardFailure=yes", "-R", "\(sessionPort):127.0.0.1:\(clientPort)",
        ]) + ["socat -u TCP:127.0.0.1:\(sessionPort) -"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == "from-client\n")
    }

    @Test func agentForwardingExposesTheClientsKeys() async throws {
        let fixture = try await AgentFixture()
        let socket = fixture.directory.path("agent.sock")
        let agent = try BackgroundProcess(["ssh-agent", "-D", "-a", socket])
        defer { agent.stop() }
        #expect(await waitFor { FileManager.default.fileExists(atPath: socket) })
        let added = try await TestProcess.run(["ssh-add", fixture.directory.path("userkey")],
                                        environment: ["SSH_AUTH_SOCK": socket])
        #expect(added.status == 0, "\(added.stderr)")
        let result = try await TestProcess.run(try fixture.ssh(["-o", "IdentityAgent=\(socket)", "-o", "ForwardAgent=yes"])
            + ["test -S \"$SSH_AUTH_SOCK\" && ssh-add -l"])
        #expect(result.status == 0, "\(result.stderr)")
        let fingerprint = try await TestProcess.run(["ssh-keygen", "-lf", fixture.directory.path("userkey.pub")])
            .stdout.split(separator: " ")[1]
        #expect(result.stdout.contains(fingerprint))
        // Without -A there is no agent socket.
        let plain = try await TestProcess.run(try fixture.ssh() + ["echo \"[${SSH_AUTH_SOCK:-}]\""])
        #expect(plain.stdout == "[]\n")
    }
}

/// A TCP port nothing listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard bound else { throw FixtureError("no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
