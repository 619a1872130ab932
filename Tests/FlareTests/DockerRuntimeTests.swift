import AsyncHTTPClient
import FlareClient
import FlareContracts
import Foundation
import NIOCore
import NIOFoundationCompat
import Testing

/// Sessions as Docker containers (`flare-server --runtime docker`), end to end with OpenSSH. The
/// test command (Scripts/test.sh) starts dockerd and builds burstflare/session-base first.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct DockerRuntimeTests {
    static let arguments = ["--runtime", "docker"]
    static let manifest = #"{"image":"burstflare/session-base","persistedPaths":["/home/flare/work"]}"#

    func dockerSession() async throws -> ServerFixture {
        let fixture = try await ServerFixture(arguments: Self.arguments)
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        let up = try await fixture.flare(["session", "up", "dev", "--template", "base"])
        guard up.status == 0 else { throw FixtureError("session up failed: \(up.stderr) \(fixture.server.output)") }
        return fixture
    }

    @Test func theShellRunsAsFlareInAContainerWithOnlyLoopback() async throws {
        let fixture = try await dockerSession()
        let result = try await fixture.flare(["ssh", "dev", "--", "id -un; ls /sys/class/net; cat /etc/debian_version; exit 5"])
        #expect(result.status == 5, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "flare")
        #expect(lines.dropFirst().first == "lo")
        #expect(lines.count == 3, "only lo: \(lines)")
        #expect(lines.last?.hasPrefix("12.") == true, "Debian bookworm: \(lines)")
        let container = try await TestProcess.run(["docker", "inspect", "-f", "{{.HostConfig.NetworkMode}} {{.State.Running}}",
                                             "flare-\(try await fixture.sessionId())"])
        #expect(container.stdout == "none true\n")
    }

    @Test func persistedFilesSurviveStopAndStartInANewContainer() async throws {
        let fixture = try await dockerSession()
        let first = try await fixture.flare(["ssh", "dev", "--", "echo kept > ~/work/note; echo gone > ~/scratch; hostname"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let stopped = try await TestProcess.run(["docker", "ps", "-q", "--filter", "name=flare-\(try await fixture.sessionId())"])
        #expect(stopped.stdout.isEmpty, "no container runs for a sleeping session")

        let second = try await fixture.flare(["ssh", "dev", "--", "cat ~/work/note; cat ~/scratch 2>/dev/null || echo no-scratch; hostname"])
        let lines = second.stdout.split(separator: "\n").map(String.init)
        #expect(lines.prefix(2) == ["kept", "no-scratch"], "\(second.stdout) \(second.stderr)")
        #expect(lines.last != first.stdout.split(separator: "\n").last.map(String.init), "a different container")
    }

    @Test func aContainerKilledFromOutsideFailsTheSessionAndStartRecoversTheLatestSnapshot() async throws {
        let fixture = try await dockerSession()
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo saved > ~/work/state"]).status == 0)
        #expect(try await fixture.flare(["snapshot", "save", "dev"]).status == 0)
        let id = try await fixture.sessionId()
        #expect(try await TestProcess.run(["docker", "kill", "flare-\(id)"]).status == 0)
        let failed = await waitFor(timeout: 15) {
            (try? await fixture.flare(["session", "get", "dev", "--json"]).stdout).flatMap {
                try? FlareJSON.decoder().decode(SessionInfo.self, from: Data($0.utf8))
            }?.state == .failed
        }
        #expect(failed)
        #expect(try await fixture.flare(["session", "get", "dev"]).stdout.contains("killed by signal 9"))
        #expect(try await fixture.flare(["session", "start", "dev"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "cat ~/work/state"]).stdout == "saved\n")
    }

    @Test func aVersionWithPackagesAndSetupIsBuiltAndItsSessionsRunTheImage() async throws {
        let fixture = try await ServerFixture(arguments: Self.arguments)
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        let manifest = fixture.directory.path("jq.json")
        try #"{"image":"burstflare/session-base","packages":["jq"],"setup":"echo set-up-as-$(id -un) > /etc/flare-setup","resources":{"memoryMB":768,"pids":300}}"#
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let upload = try await fixture.flare(["template", "upload", "base", "--version", "2", "--manifest", manifest, "--wait"],
                                       timeout: 300)
        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(upload.stderr.contains("--no-install-recommends jq"), "the build log is followed: \(upload.stderr)")
        #expect(try await fixture.flare(["template", "promote", "base", "2"]).status == 0)
        #expect(try await fixture.flare(["session", "up", "jq", "--template", "base"]).status == 0)
        let run = try await fixture.flare(["ssh", "jq", "--", "jq --version; cat /etc/flare-setup; id -un"])
        #expect(run.stdout == "jq-1.6\nset-up-as-root\nflare\n", "\(run.stderr)")
        let limits = try await TestProcess.run(["docker", "inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
                                          "flare-\(try await fixture.sessionId("jq"))"])
        #expect(limits.stdout == "\(768 << 20) 300\n")
    }

    @Test func aFailingSetupIsDeadLetteredWithItsLogAndCannotBePromoted() async throws {
        let fixture = try await ServerFixture(arguments: Self.arguments)
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        let manifest = fixture.directory.path("bad.json")
        try #"{"image":"burstflare/session-base","setup":"echo about-to-fail; exit 3"}"#
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let upload = try await fixture.flare(["template", "upload", "base", "--version", "bad", "--manifest", manifest, "--wait"],
                                       timeout: 300)
        #expect(upload.status == 1)
        #expect(upload.stderr.contains("failed after 3 attempt(s)"), "\(upload.stderr)")
        let log = try await fixture.flare(["build", "log", "base@bad"])
        #expect(log.stdout.components(separatedBy: "about-to-fail").count - 1 == 3, "three attempts: \(log.stdout)")
        #expect(log.stdout.contains("giving up after 3 attempts"))
        #expect(try await fixture.flare(["build", "log", "base@bad", "--follow"]).status == 1)
        let promote = try await fixture.flare(["template", "promote", "base", "bad"])
        #expect(promote.status == 1)
        #expect(promote.stderr.contains("has not been built (dead_lettered)"))
        #expect(try await fixture.flare(["template", "list"]).stdout.contains("bad (dead_lettered)"))
    }

    @Test func bundledFilesAreCopiedIntoTheImageAndHostileOrHugeBundlesAreRefused() async throws {
        let fixture = try await ServerFixture(arguments: Self.arguments + ["--max-bundle-mib", "1"])
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        let bundle = fixture.directory.path("bundle")
        try FileManager.default.createDirectory(atPath: bundle + "/etc/tool", withIntermediateDirectories: true)
        try "answer=42\n".write(toFile: bundle + "/etc/tool/config", atomically: true, encoding: .utf8)
        try "not sent\n".write(toFile: bundle + "/unlisted.txt", atomically: true, encoding: .utf8)
        let manifest = fixture.directory.path("files.json")
        try #"{"image":"burstflare/session-base","files":[{"from":"etc/tool","to":"/opt/tool"}]}"#
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let missing = try await fixture.flare(["template", "upload", "base", "--version", "2", "--manifest", manifest])
        #expect(missing.stderr.contains("upload them with --bundle DIR"), "\(missing.stderr)")
        let upload = try await fixture.flare(["template", "upload", "base", "--version", "3", "--manifest", manifest,
                                        "--bundle", bundle, "--wait"], timeout: 300)
        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(try await fixture.flare(["template", "promote", "base", "3"]).status == 0)
        #expect(try await fixture.flare(["session", "up", "files", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "files", "--", "cat /opt/tool/config; ls /opt/tool"]).stdout == "answer=42\nconfig\n")

        // Straight to the API, as a hostile client would: version 2 still waits for its bundle.
        let api = try fixture.client()
        let bundleOfVersion2 = Endpoints.Templates.uploadBundle.at("base", "2")
        /// The answer's status, and the error's code and message when refused.
        @Sendable func putBundle(_ file: String) async throws -> (Int, String) {
            let body = HTTPClientRequest.Body.bytes(ByteBuffer(data: try Data(contentsOf: URL(fileURLWithPath: file))))
            do {
                try await api.upload(bundleOfVersion2, body, contentType: "application/x-tar")
                return (200, "")
            } catch let error as FlareClientError {
                return (error.status ?? 0, "\(error.code ?? ""): \(error)")
            }
        }
        let evil = fixture.directory.path("evil.tar")
        let script = "import io, tarfile, sys\n"
            + "with tarfile.open(sys.argv[1], 'w') as tar:\n"
            + "    for name in ['etc/tool/ok', 'etc/tool/../../../../tmp/flare-escaped']:\n"
            + "        info = tarfile.TarInfo(name); info.size = 1; tar.addfile(info, io.BytesIO(b'x'))\n"
        let made = try await TestProcess.run(["python3", "-c", script, evil])
        #expect(made.status == 0, "\(made.stderr)")
        let refused = try await putBundle(evil)
        #expect(refused.0 == 400, "\(refused.1)")
        #expect(refused.1.contains("invalid_bundle"))
        #expect(!FileManager.default.fileExists(atPath: "/tmp/flare-escaped"))
        // A link in the bundle, then a file through it: the server (root) unpacks and never follows it.
        let linked = fixture.directory.path("linked.tar")
        let linkScript = "import io, tarfile, sys\n"
            + "with tarfile.open(sys.argv[1], 'w') as tar:\n"
            + "    link = tarfile.TarInfo('etc/tool'); link.type = tarfile.SYMTYPE; link.linkname = '/tmp'; tar.addfile(link)\n"
            + "    info = tarfile.TarInfo('etc/tool/flare-through-link'); info.size = 1; tar.addfile(info, io.BytesIO(b'x'))\n"
        #expect(try await TestProcess.run(["python3", "-c", linkScript, linked]).status == 0)
        let throughLink = try await putBundle(linked)
        #expect(throughLink.0 == 400, "\(throughLink.1)")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/flare-through-link"), "the bundle wrote through its link")
        let huge = fixture.directory.path("huge.tar")
        try Data(count: 2 << 20).write(to: URL(fileURLWithPath: huge))
        let tooLarge = try await putBundle(huge)
        #expect(tooLarge.0 == 413, "\(tooLarge.1)")
        #expect(try await fixture.flare(["template", "list"]).stdout.contains("2 (awaiting_bundle)"))
        // Following a build that cannot progress until someone uploads its bundle ends at once.
        let follow = try await fixture.flare(["build", "log", "base@2", "--follow"], timeout: 20)
        #expect(follow.status == 0 && follow.stdout.contains("waiting for the bundle"), "\(follow.stdout) \(follow.stderr)")
        // Two good bundles at once for the same version: one is kept, the other is told so.
        let good = fixture.directory.path("good.tar")
        #expect(try await TestProcess.run(["tar", "-cf", good, "-C", bundle, "etc/tool/config"]).status == 0)
        async let first = putBundle(good)
        async let second = putBundle(good)
        let statuses = try await [first.0, second.0].sorted()
        #expect(statuses == [200, 409], "\(statuses)")
    }

    @Test func aRestartedServerAdoptsItsRunningContainers() async throws {
        let fixture = try await dockerSession()
        let before = try await fixture.flare(["ssh", "dev", "--", "hostname"]).stdout
        try await fixture.crashAndRestart()
        let after = try await fixture.flare(["ssh", "dev", "--", "hostname"])
        #expect(after.status == 0, "\(after.stderr)")
        #expect(after.stdout == before, "the same container, adopted")
    }
}
