import FlareContracts
import FlareSystem
import Foundation

/// A real `flare-server` on a free port with its own data directory, and a `flare` CLI with its
/// own config directory pointed at it.
final class ServerFixture: @unchecked Sendable {
    let directory: TemporaryDirectory
    private(set) var server: BackgroundProcess
    let url: String
    let port: String
    private let extraArguments: [String]

    /// `arguments` are extra flags for flare-server.
    init(arguments: [String] = []) async throws {
        directory = try TemporaryDirectory()
        extraArguments = arguments
        (server, port) = try await Self.start(directory: directory, port: "0", arguments: arguments)
        url = "http://127.0.0.1:\(port)"
    }

    private static func start(directory: TemporaryDirectory, port: String, arguments: [String])
        async throws -> (BackgroundProcess, String)
    {
        let portFile = directory.path("port")
        try? FileManager.default.removeItem(atPath: portFile)
        let server = try BackgroundProcess([
            TestProcess.binary("flare-server"), "--data-dir", directory.path("data"), "--port", port,
            "--port-file", portFile, "--bcrypt-cost", "4", "--agent-heartbeat-seconds", "1",
            "--reconcile-seconds", "1",
        ] + arguments)
        guard await waitFor({ (try? String(contentsOfFile: portFile, encoding: .utf8))?.isEmpty == false }),
              let bound = try? String(contentsOfFile: portFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        else { throw FixtureError("flare-server did not start: \(server.output)") }
        return (server, bound)
    }

    /// Kills the server without warning (as a crash would) and starts it again on the same data
    /// directory and port.
    func crashAndRestart(betweenRuns: () async throws -> Void = {}) async throws {
        server.crash()
        try await betweenRuns()
        (server, _) = try await Self.start(directory: directory, port: port, arguments: extraArguments)
    }

    var environment: [String: String] {
        ["FLARE_URL": url, "FLARE_CONFIG_DIR": directory.path("cli"), "HOME": directory.path("home")]
    }

    /// Runs `flare ARGS…` as a user would.
    @discardableResult
    func flare(_ arguments: [String], stdin: String? = nil, environment extra: [String: String] = [:],
               timeout: TimeInterval = 90) async throws -> CommandResult {
        try await TestProcess.run([TestProcess.binary("flare")] + arguments, environment: environment.merging(extra) { $1 },
                            stdin: stdin.map { Data($0.utf8) }, timeout: timeout)
    }

    /// Signs up, and makes and promotes a template `base` from `manifest`.
    func signUpWithTemplate(manifest: String = #"{"image":"burstflare/session-base","persistedPaths":["/home/flare/work"]}"#)
        async throws
    {
        let registered = try await flare(["auth", "register", "--email", "dev@example.com", "--password-stdin"],
                                   stdin: "a long password\n")
        guard registered.status == 0 else { throw FixtureError("register failed: \(registered.stderr)") }
        let manifestPath = directory.path("manifest.json")
        try manifest.write(toFile: manifestPath, atomically: true, encoding: .utf8)
        for command in [["template", "create", "base"],
                        ["template", "upload", "base", "--version", "1", "--manifest", manifestPath, "--wait"],
                        ["template", "promote", "base", "1"]] {
            let result = try await flare(command)
            guard result.status == 0 else { throw FixtureError("\(command) failed: \(result.stderr)") }
        }
    }

    /// A fixture on `runtime` (`host` or `docker`).
    convenience init(runtime: String, arguments: [String] = []) async throws {
        try await self.init(arguments: (runtime == "docker" ? ["--runtime", "docker"] : []) + arguments)
    }

    /// A fixture with a user, a template and a running session `dev`.
    static func withRunningSession(arguments: [String] = []) async throws -> ServerFixture {
        let fixture = try await ServerFixture(arguments: arguments)
        try await fixture.signUpWithTemplate()
        let up = try await fixture.flare(["session", "up", "dev", "--template", "base"])
        guard up.status == 0 else { throw FixtureError("session up failed: \(up.stderr)") }
        return fixture
    }

    /// `flare ssh dev` running a long command, once it is connected; its output goes to the file.
    func liveSSH(environment extra: [String: String] = [:]) async throws -> (SpawnedProcess, TemporaryFile) {
        let log = try TemporaryFile()
        let ssh = try SpawnedProcess([TestProcess.binary("flare"), "ssh", "dev", "--", "echo connected; sleep 60"],
                                     environment: environment.merging(extra) { $1 }, stdin: nil,
                                     stdout: log.handle.fileDescriptor, stderr: log.handle.fileDescriptor)
        guard await waitFor(timeout: 15, { log.contents().contains("connected") }) else {
            throw FixtureError("flare ssh did not connect: \(log.contents())")
        }
        return (ssh, log)
    }

    /// What the CLI keeps between runs (`config.json`), as JSON.
    func cliConfig() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: directory.path("cli/config.json")))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    /// The id of the session named `name`.
    func sessionId(_ name: String = "dev") async throws -> String {
        let json = try await flare(["session", "get", name, "--json"]).stdout
        return try FlareJSON.decoder().decode(SessionInfo.self, from: Data(json.utf8)).id
    }

    deinit {
        server.stop()
        // The host runtime's agents outlive the server by design; end them: each runs as the only
        // child of a bwrap whose command line names the session's directory.
        _ = try? TestProcess.runBlocking(["sh", "-c", "for p in $(pgrep -f -- '\(directory.path("data"))/sessions/'); do "
            + "kill -9 $(cat /proc/$p/task/$p/children 2>/dev/null) $p 2>/dev/null; done; "
            + "pkill -9 -f -- '--state-dir \(directory.path("data"))'; true"])
        // The docker runtime's containers likewise.
        if extraArguments.contains("docker") {
            _ = try? TestProcess.runBlocking(["sh", "-c", "docker rm -f $(docker ps -aq --filter "
                + "label=burstflare.data=\(directory.path("data"))) >/dev/null 2>&1"])
            // And the images its template builds made.
            _ = try? TestProcess.runBlocking(["sh", "-c", "docker rmi -f $(docker images -q --filter "
                + "label=burstflare.data=\(directory.path("data"))) >/dev/null 2>&1"])
        }
    }
}
