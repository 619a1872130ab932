import FlareContracts
import FlareSystem
import Foundation
import Testing

/// flare-server's parts run in one ServiceGroup: SIGTERM ends them in order, and nothing a client
/// holds open keeps the server from exiting.
@Suite struct ServerShutdownTests {
    /// A gateway's revocation stream and the running agent's long poll are open when SIGTERM
    /// arrives: the drain ends both, the HTTP server finishes, the server exits 0 well within the
    /// group's 30 s limit, and after a restart on the same data the agent, re-adopted, dials home again.
    @Test func sigtermEndsOpenStreamsAndExitsCleanly() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let gatewayToken = try String(contentsOfFile: fixture.directory.path("data/gateway-token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let stream = try TemporaryFile()
        let curl = try SpawnedProcess(
            ["curl", "-sS", "-N", "--max-time", "60", "-H", "Authorization: Bearer \(gatewayToken)",
             fixture.url + Endpoints.GatewayLink.revocations.path],
            stdin: nil, stdout: stream.handle.fileDescriptor, stderr: stream.handle.fileDescriptor)
        defer { curl.signal(SIGKILL) }
        #expect(await waitFor(timeout: 15) { stream.contents().contains("keepalive") }, "the stream is open: \(stream.contents())")

        let asked = Date()
        kill(fixture.server.pid, SIGTERM)
        let status = await fixture.server.child.exited(timeout: 25)
        let took = Date().timeIntervalSince(asked)
        #expect(status == 0, "flare-server exit status \(String(describing: status)): \(fixture.server.output.suffix(2000))")
        #expect(took < 20, "flare-server took \(took) s to stop")
        #expect(await curl.exited(timeout: 5) != nil, "the revocation stream ended with the server")

        try await fixture.crashAndRestart()
        let restarted = Date()
        // The first `ssh` registers a new key, which the re-adopted agent must fetch through its
        // reopened channel: the agent runs on, as the uid it had, in the directory it has bound.
        let back = try await fixture.flare(["ssh", "dev", "--", "echo back"])
        #expect(back.stdout == "back\n", "\(back.stderr) \(fixture.server.output.suffix(3000))")
        func session() async throws -> SessionInfo {
            try FlareJSON.decoder().decode(SessionInfo.self, from: Data(try await fixture.flare(["session", "get", "dev", "--json"]).stdout.utf8))
        }
        #expect(await waitFor(timeout: 15) { (try? await session().lastHeartbeatAt).flatMap { $0 }.map { $0 > restarted } == true },
                "the adopted agent heartbeats to the new server")
        #expect(try await session().state == .running)
    }
}
