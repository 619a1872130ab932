import FlareContracts
import FlareSystem
import Foundation
import Gateway
import Testing

/// A session's user never reaches beyond their own session: tried from the attacker's side, from a
/// shell inside a session, from a template's setup, and as a second account.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct IsolationTests {
    /// A Unix socket on the host that counts who connects: what a planted link would point at.
    final class MarkerSocket {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = try UnixSocket.listen(path: path, backlog: 8)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }

        /// Whether anything connected since the socket was made.
        var wasReached: Bool {
            let client = accept(fd, nil, nil)
            if client >= 0 { close(client) }
            return client >= 0
        }

        deinit { close(fd) }
    }

    /// The agent process of a host-runtime session (inside its sandbox).
    static func hostAgentPid(_ sessionId: String) async throws -> Int32 {
        let found = try await TestProcess.run(["pgrep", "-f", "^/opt/flare/bin/flare-agent run .*--session \(sessionId)"])
        guard let pid = found.stdout.split(separator: "\n").first.flatMap({ Int32($0) }) else {
            throw FixtureError("no agent for \(sessionId)")
        }
        return pid
    }

    static func agentToken(pid: Int32) throws -> String {
        let environ = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))
        for entry in environ.split(separator: 0).map({ String(decoding: $0, as: UTF8.self) })
        where entry.hasPrefix("FLARE_AGENT_TOKEN=") {
            return String(entry.dropFirst("FLARE_AGENT_TOKEN=".count))
        }
        throw FixtureError("no agent token in the environment of \(pid)")
    }

    // MARK: Host runtime

    /// flare-server's default first sandbox uid.
    static let firstSandboxUID: uid_t = 1_879_048_192

    /// The cgroup files of a host session's agent, seen from the host (v2, or v1's memory and pids).
    static func cgroupFiles(pid: Int32) throws -> (memory: String, pids: String) {
        let lines = try String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8).split(separator: "\n")
        /// The path of `controller`'s line (`4:memory:/burstflare/x`); "" for v2's line (`0::/burstflare/x`).
        func path(_ controller: String) -> String? {
            for line in lines {
                let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
                guard fields.count == 3 else { continue }
                if controller.isEmpty ? fields[1].isEmpty : fields[1].split(separator: ",").contains(Substring(controller)) {
                    return String(fields[2])
                }
            }
            return nil
        }
        if FileManager.default.fileExists(atPath: "/sys/fs/cgroup/cgroup.controllers"), let unified = path("") {
            return ("/sys/fs/cgroup\(unified)/memory.max", "/sys/fs/cgroup\(unified)/pids.max")
        }
        guard let memory = path("memory"), let pids = path("pids") else { throw FixtureError("no cgroups for \(pid): \(lines)") }
        return ("/sys/fs/cgroup/memory\(memory)/memory.limit_in_bytes", "/sys/fs/cgroup/pids\(pids)/pids.max")
    }

    @Test func aHostSessionSeesOnlyItsOwnFilesystemAsAnUnprivilegedUser() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let data = fixture.directory.path("data")
        let shell = try await fixture.flare(["ssh", "dev", "--", """
            id -u; ls $HOME/../../../..; test -e \(data)/flare.sqlite && echo SEES-DATA || echo no-data-dir; \
            ls \(fixture.directory.path("")) >/dev/null 2>&1 && echo SEES-HOST || echo no-host-dirs; \
            grep -c : /proc/net/dev; touch /tmp/mine && echo tmp-ok; \
            cat /proc/1/environ >/dev/null 2>&1 && echo READ-AGENT-ENV || echo agent-env-hidden; \
            grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '
            """])
        #expect(shell.status == 0, "\(shell.stderr)")
        let lines = shell.stdout.split(separator: "\n").map(String.init)
        // The session user: one of the sandbox uids when the server is root (the first one nothing
        // else runs as), else 1000 in a user namespace.
        let sessionUID = lines.first.flatMap { uid_t($0) } ?? 0
        #expect(geteuid() == 0 ? sessionUID >= Self.firstSandboxUID : sessionUID == 1000, "the session user: \(lines)")
        #expect(!lines.contains("flare.sqlite") && !lines.contains("runtime-token-ed25519.key"),
                "the session's / is its own: \(lines)")
        #expect(lines.contains("no-data-dir") && lines.contains("no-host-dirs"))
        #expect(lines.contains("1"), "only a loopback interface: \(lines)")
        #expect(lines.contains("tmp-ok"))
        #expect(lines.contains("agent-env-hidden"), "the agent's token is out of the shell's reach: \(lines)")
        #expect(lines.contains("CapEff: 0000000000000000") && lines.contains("NoNewPrivs: 1")
                && (geteuid() != 0 || lines.contains("CapBnd: 0000000000000000")),
                "no capabilities, none to regain: \(lines)")

        // On the host: an unprivileged uid, and files that are that uid's, never root's.
        let pid = try await Self.hostAgentPid(try await fixture.sessionId())
        let uid = try await TestProcess.run(["ps", "-o", "uid=", "-p", "\(pid)"]).stdout.trimmingCharacters(in: .whitespaces)
        if geteuid() == 0 {
            #expect(uid.trimmingCharacters(in: .whitespacesAndNewlines) == "\(sessionUID)", "the sandbox uid, not root")
            let owner = try await TestProcess.run(["stat", "-c", "%u", data + "/sessions/\(try await fixture.sessionId())/fs/home/flare"])
            #expect(owner.stdout == "\(sessionUID)\n", "the session's home is the sandbox uid's")
        }
        // The data directory (in a 0700 test directory) stays the server's alone, and the agent
        // holds no descriptor of the host's.
        #expect(try await TestProcess.run(["stat", "-c", "%a", data]).stdout == "700\n")
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap {
            try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")
        }
        // (Its standard output and error are its log, which the server keeps.)
        #expect(!descriptors.contains { ($0.hasPrefix(fixture.directory.path("")) && !$0.hasPrefix(data + "/logs/"))
                    || $0.hasPrefix("/work") },
                "the agent holds host paths open: \(descriptors)")
    }

    /// Two sessions of one host never share a uid (nor its keyrings and per-user limits), and each
    /// is held to its template's memory, CPU and process limits in a cgroup of its own.
    @Test func eachHostSessionRunsAsItsOwnUidWithinItsTemplatesLimits() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate(manifest: #"{"image":"burstflare/session-base","persistedPaths":["/home/flare/work"],"#
            + #""resources":{"memoryMB":128,"cpus":0.5,"pids":64}}"#)
        for name in ["one", "two"] {
            let up = try await fixture.flare(["session", "up", name, "--template", "base"])
            #expect(up.status == 0, "\(up.stderr)")
        }
        let one = try await fixture.flare(["ssh", "one", "--", "id -u"]).stdout
        let two = try await fixture.flare(["ssh", "two", "--", "id -u"]).stdout
        guard geteuid() == 0 else {
            // An unprivileged server has one uid to give: every session is 1000 in its namespace.
            #expect(one == "1000\n" && two == "1000\n")
            return
        }
        #expect(one != two, "two sessions share uid \(one)")
        for uid in [one, two] {
            #expect(uid_t(uid.trimmingCharacters(in: .whitespacesAndNewlines)).map { $0 >= Self.firstSandboxUID } == true)
        }

        let hog = try await fixture.flare(["ssh", "one", "--",
                                     "python3 -c 'b = bytearray(400 << 20); b[::4096] = b\"x\" * len(b[::4096]); print(\"allocated\")'; echo exit=$?"])
        #expect(!hog.stdout.contains("allocated") && hog.stdout.contains("exit=137"), "\(hog.stdout) \(hog.stderr)")
        let forks = try await fixture.flare(["ssh", "one", "--", """
            python3 -c '
            import os, time
            n = 0
            for i in range(200):
                try:
                    pid = os.fork()
                except OSError:
                    break
                if pid == 0:
                    time.sleep(3); os._exit(0)
                n += 1
            print(n)'
            """])
        let forked = Int(forks.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
        #expect(forked > 10 && forked < 64, "processes past the limit of 64: \(forks.stdout) \(forks.stderr)")
        #expect(try await fixture.flare(["ssh", "two", "--", "echo alive"]).stdout == "alive\n", "the other session is untouched")

        let id = try await fixture.sessionId("one")
        let files = try Self.cgroupFiles(pid: try await Self.hostAgentPid(id))
        #expect(try String(contentsOfFile: files.memory, encoding: .utf8) == "\(128 << 20)\n")
        #expect(try String(contentsOfFile: files.pids, encoding: .utf8) == "64\n")
        #expect(try await fixture.flare(["session", "stop", "one"]).status == 0)
        #expect(await waitFor(timeout: 10) { !FileManager.default.fileExists(atPath: (files.memory as NSString).deletingLastPathComponent) },
                "the stopped session's cgroup is removed")
    }

    @Test func aLinkPlantedAtTheAgentSocketFromInsideIsNotFollowed() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let marker = try MarkerSocket(path: fixture.directory.path("host.sock"))
        // Hard links instead: the host's sockets do not exist in the sandbox, and the control
        // channel's socket is on a read-only mount, so only the user's own sockets could be linked.
        let hard = try await fixture.flare(["ssh", "dev", "--", """
            ln \(marker.path) /run/flare/h1 2>/dev/null && echo LINKED-HOST; \
            ln /run/flare-control/agent.sock /run/flare/h2 2>/dev/null && echo LINKED-CONTROL; \
            ln /proc/1/root/run/flare-control/agent.sock /run/flare/h3 2>/dev/null && echo LINKED-PROC; echo tried
            """])
        #expect(hard.stdout == "tried\n", "\(hard.stdout) \(hard.stderr)")
        // The session's user owns /run/flare under the host runtime: they can swap the socket.
        let plant = try await fixture.flare(["ssh", "dev", "--",
                                       "rm /run/flare/ssh.sock && ln -s \(marker.path) /run/flare/ssh.sock && echo planted"])
        #expect(plant.stdout == "planted\n", "\(plant.stderr)")
        let relayed = try await fixture.flare(["ssh", "dev", "--", "true"], timeout: 30)
        #expect(relayed.status != 0)
        #expect(!marker.wasReached, "the gateway connected to the host socket the link named")

        // A regular file, a directory or a link at the endpoint: theGatewayConnectsOnlyToASocket… below.
    }

    @Test func theGatewayConnectsOnlyToASocketAtTheEndpointItself() async throws {
        let directory = try TemporaryDirectory()
        let marker = try MarkerSocket(path: directory.path("target.sock"))
        try FileManager.default.createSymbolicLink(atPath: directory.path("link.sock"), withDestinationPath: marker.path)
        #expect(throws: UnixSocket.Failure.self) { try UnixSocket.connect(path: directory.path("link.sock")) }
        #expect(!marker.wasReached)
        try Data("x".utf8).write(to: URL(fileURLWithPath: directory.path("file.sock")))
        #expect(throws: UnixSocket.Failure.self) { try UnixSocket.connect(path: directory.path("file.sock")) }
        try FileManager.default.createDirectory(atPath: directory.path("dir.sock"), withIntermediateDirectories: false)
        #expect(throws: UnixSocket.Failure.self) { try UnixSocket.connect(path: directory.path("dir.sock")) }
        let fd = try UnixSocket.connect(path: marker.path)
        close(fd)
        #expect(marker.wasReached, "a real socket at the path itself is connected")
    }

    @Test func eachAgentChannelAnswersOnlyItsOwnSessionsAgentRoutes() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        #expect(try await fixture.flare(["session", "up", "other", "--template", "base"]).status == 0)
        let (dev, other) = (try await fixture.sessionId("dev"), try await fixture.sessionId("other"))
        let token = try Self.agentToken(pid: try await Self.hostAgentPid(dev))
        let channel = { (id: String) in fixture.directory.path("data/control/\(id)/agent.sock") }
        let auth = ["Authorization": "Bearer \(token)"]

        #expect(try await Curl.request("http://x/agent/v1/config", headers: auth, unixSocket: channel(dev)).status == 200)
        let stolen = try await Curl.request("http://x/agent/v1/config", headers: auth, unixSocket: channel(other))
        #expect(stolen.status == 401, "another session's channel refuses this token: \(stolen.body)")
        for path in ["/api/health", "/api/sessions", "/gateway/v1/revocations", "/metrics"] {
            #expect(try await Curl.request("http://x" + path, headers: auth, unixSocket: channel(dev)).status == 404,
                    "\(path) is not on an agent channel")
        }
        #expect(try await Curl.request(fixture.url + "/agent/v1/config", headers: auth).status == 404,
                "no agent routes on the public port")
        let result = try await Curl.request("http://x/agent/v1/commands/cmd_other/result", method: "POST", headers: auth,
                                      body: #"{"succeeded":true,"message":"forged"}"#, unixSocket: channel(dev))
        #expect(result.status == 404, "a result for a command this agent was not sent: \(result.body)")
    }

    @Test func anotherAccountCannotSeeOrTouchTheFirstAccountsResources() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        #expect(try await fixture.flare(["snapshot", "save", "dev"]).status == 0)
        let id = try await fixture.sessionId()
        let snapshot = try await fixture.flare(["snapshot", "list", "dev", "--json"]).stdout
        let snapshotId = try FlareJSON.decoder().decode([SnapshotInfo].self, from: Data(snapshot.utf8)).first?.id ?? "none"
        let intruder = ["Authorization": "Bearer \(try await Curl.register(fixture.url, email: "mallory@example.com"))"]
        // Every route that names a session or template, with the first account's ids: what
        // another account's token may try, in the raw (curl) form an attacker would send.
        func attempt(_ target: some EndpointTarget, _ body: String? = nil) -> (String, String, String?) {
            (target.method.rawValue, target.path, body)
        }
        let attempts = [
            attempt(Endpoints.Sessions.get.at(id)), attempt(Endpoints.Sessions.get.at("dev")),
            attempt(Endpoints.Sessions.events.at(id)), attempt(Endpoints.Sessions.logs.at(id)),
            attempt(Endpoints.Snapshots.list.at(id)), attempt(Endpoints.Snapshots.content.at(id, snapshotId)),
            attempt(Endpoints.Snapshots.restore.at(id, snapshotId), "{}"), attempt(Endpoints.Snapshots.save.at(id), "{}"),
            attempt(Endpoints.Snapshots.delete.at(id, snapshotId)),
            attempt(Endpoints.Sessions.stop.at(id), "{}"), attempt(Endpoints.Sessions.start.at(id), "{}"),
            attempt(Endpoints.Sessions.runtimeToken.at(id), #"{"purpose":"ssh"}"#),
            attempt(Endpoints.Sessions.revokeRuntimeTokens.at(id), "{}"),
            attempt(Endpoints.Sessions.delete.at(id)), attempt(Endpoints.Templates.get.at("base")),
            attempt(Endpoints.Templates.buildLog.at("base", "1")),
            attempt(Endpoints.Templates.promote.at("base"), #"{"version":"1"}"#),
            attempt(Endpoints.Templates.createVersion.at("base"), #"{"version":"2","manifest":{"image":"debian:bookworm"}}"#),
            attempt(Endpoints.Templates.uploadBundle.at("base", "1"), "not a tar"),
            attempt(Endpoints.Sessions.create, #"{"name":"mine","template":"base"}"#),
        ]
        for (method, path, body) in attempts {
            let response = try await Curl.request(fixture.url + path, method: method, headers: intruder, body: body)
            #expect(response.status == 404, "\(method) \(path) as another account: \(response.status) \(response.body)")
        }
        let listed = try await Curl.request(fixture.url + Endpoints.Sessions.list.path, headers: intruder)
        #expect(listed.status == 200 && !listed.body.contains(id))
        #expect(try await fixture.flare(["snapshot", "list", "dev", "--json"]).stdout.contains(snapshotId))
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo still-mine"]).stdout == "still-mine\n")
    }

    // MARK: The API under abuse

    @Test func twentyWrongLoginsGet429WithRetryAfterAndTheSameMessageForUnknownEmails() async throws {
        let fixture = try await ServerFixture()
        _ = try await Curl.register(fixture.url, email: "dev@example.com")
        var statuses: [Int] = []
        var refusal: CurlResponse?
        for attempt in 0..<20 {
            let email = attempt % 2 == 0 ? "dev@example.com" : "nobody-\(attempt)@example.com"
            let response = try await Curl.request(fixture.url + "/api/auth/login", method: "POST",
                                            body: #"{"email":"\#(email)","password":"wrong password"}"#)
            statuses.append(response.status)
            if response.status == 401 {
                #expect(response.body.contains("email or password is incorrect"), "one message for both: \(response.body)")
            }
            if response.status == 429 { refusal = response }
        }
        #expect(statuses.prefix(10).allSatisfy { $0 == 401 }, "\(statuses)")
        #expect(statuses.suffix(10).allSatisfy { $0 == 429 }, "\(statuses)")
        #expect(Int(refusal?.headers["retry-after"] ?? "") ?? 0 >= 1)
        #expect(refusal?.headers["ratelimit-limit"] == "10")
        #expect(refusal?.headers["ratelimit-remaining"] == "0")
        #expect(refusal?.body.contains("rate_limited") == true)
        // Even the right password waits: the limit is on attempts, not failures.
        let right = try await Curl.request(fixture.url + "/api/auth/login", method: "POST",
                                     body: #"{"email":"dev@example.com","password":"a long password"}"#)
        #expect(right.status == 429)
    }

    @Test func aSlowHeaderClientIsDropped() async throws {
        let fixture = try await ServerFixture(arguments: ["--header-timeout-seconds", "2"])
        // Headers trickled a byte at a time, never finished: the server hangs up after 2 s.
        let script = """
            import socket, sys, time
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            start = time.time()
            try:
                for ch in b"GET /api/health HTTP/1.1\\r\\nHost: x\\r\\nX-Slow: " + b"a" * 100:
                    s.send(bytes([ch])); time.sleep(0.2)
                    if time.time() - start > 15: break
                print("still-open")
            except OSError:
                print("dropped after %.0f s" % (time.time() - start))
            """
        let result = try await TestProcess.run(["python3", "-c", script, fixture.port], timeout: 40)
        #expect(result.stdout.hasPrefix("dropped after 2") || result.stdout.hasPrefix("dropped after 3"), "\(result.stdout) \(result.stderr)")
        #expect(try await Curl.request(fixture.url + "/api/health").status == 200, "a normal client is served")

        // The same on a kept-alive connection: a first request answered at once, an idle pause
        // longer than the deadline (not cut), a second request sent whole, then the third one's
        // headers trickled.
        let keptAlive = """
            import socket, sys, time
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s.sendall(b"GET /api/health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            first = s.recv(4096).split(b"\\r\\n")[0].decode()
            time.sleep(3)
            body = b'{"email":"slow@example.com","password":"a long password"}'
            s.sendall(b"POST /api/auth/register HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                      + b"Content-Length: %d\\r\\n\\r\\n" % len(body) + body)
            second = s.recv(4096).split(b"\\r\\n")[0].decode()
            start = time.time()
            try:
                for ch in b"GET /api/health HTTP/1.1\\r\\nX-Slow: " + b"a" * 100:
                    s.send(bytes([ch])); time.sleep(0.2)
                    if time.time() - start > 15: break
                print(first, "|", second, "| still-open")
            except OSError:
                print(first, "|", second, "| dropped after %.0f s" % (time.time() - start))
            """
        let kept = try await TestProcess.run(["python3", "-c", keptAlive, fixture.port], timeout: 60)
        #expect(kept.stdout.hasPrefix("HTTP/1.1 200 OK | HTTP/1.1 201 Created | dropped after 2")
                || kept.stdout.hasPrefix("HTTP/1.1 200 OK | HTTP/1.1 201 Created | dropped after 3"),
                "\(kept.stdout) \(kept.stderr)")

        // A body trickled after a complete head (a byte every 0.2 s of a 1 MB login) is dropped too.
        let slowBody = """
            import socket, sys, time
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
            s.sendall(b"POST /api/auth/login HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
                      + b"Content-Length: 1000000\\r\\n\\r\\n")
            start = time.time()
            try:
                while time.time() - start < 15:
                    s.send(b" "); time.sleep(0.2)
                print("still-open")
            except OSError:
                print("dropped after %.0f s" % (time.time() - start))
            """
        let body = try await TestProcess.run(["python3", "-c", slowBody, fixture.port], timeout: 40)
        #expect(body.stdout.hasPrefix("dropped after 2") || body.stdout.hasPrefix("dropped after 3")
                || body.stdout.hasPrefix("dropped after 4"), "\(body.stdout) \(body.stderr)")
    }

    @Test func aRefusedWebSocketHandshakeCarriesItsStatusAndReason() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let id = try await fixture.sessionId()
        let handshake = ["Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="]
        let forged = try await Curl.request(fixture.url + "/gateway/ssh/\(id)?token=forged.token.value", headers: handshake)
        #expect(forged.status == 401, "\(forged.status) \(forged.body)")
        #expect(forged.headers["content-type"]?.hasPrefix("application/json") == true)
        #expect(forged.body.contains("\"code\""), "a JSON error body: \(forged.body)")
        let missing = try await Curl.request(fixture.url + "/gateway/terminal/\(id)", headers: handshake)
        #expect(missing.status == 401 && missing.body.contains("token_missing"), "\(missing.body)")
        let deleted = try await Curl.request(fixture.url + "/gateway/ssh/ses_doesnotexist?token=x.y.z", headers: handshake)
        #expect([401, 404].contains(deleted.status) && deleted.body.contains("\"message\""), "\(deleted.body)")
    }

    @Test func templatesAskingAboveTheCeilingsOrForAnotherAccountsImageAreRefused() async throws {
        let fixture = try await ServerFixture(arguments: ["--max-session-memory-mib", "2048"])
        try await fixture.signUpWithTemplate()
        let big = fixture.directory.path("big.json")
        try #"{"image":"burstflare/session-base","resources":{"memoryMB":4096}}"#
            .write(toFile: big, atomically: true, encoding: .utf8)
        let refused = try await fixture.flare(["template", "upload", "base", "--version", "2", "--manifest", big])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("at most 2048"), "\(refused.stderr)")

        let token = try await Curl.register(fixture.url, email: "other@example.com")
        let auth = ["Authorization": "Bearer \(token)"]
        #expect(try await Curl.request(fixture.url + "/api/templates", method: "POST", headers: auth,
                                 body: #"{"name":"copy"}"#).status == 201)
        let owner = ["Authorization": "Bearer \(try #require(try fixture.client().token))"]
        let victim = try await Curl.request(fixture.url + "/api/templates/base", headers: owner).body
        let victimId = (try JSONSerialization.jsonObject(with: Data(victim.utf8)) as? [String: Any])?["id"] as? String ?? ""
        #expect(victimId.hasPrefix("tpl"))
        let steal = try await Curl.request(fixture.url + "/api/templates/copy/versions", method: "POST", headers: auth,
                                     body: #"{"version":"1","manifest":{"image":"burstflare/template-\#(victimId.lowercased()):1"}}"#)
        #expect(steal.status == 400 && steal.body.contains("invalid_image"), "\(steal.status) \(steal.body)")
    }

    @Test func singleUserModeClosesRegistrationAfterTheFirstAccount() async throws {
        let fixture = try await ServerFixture(arguments: ["--single-user"])
        _ = try await Curl.register(fixture.url, email: "me@example.com")
        let second = try await Curl.request(fixture.url + "/api/auth/register", method: "POST",
                                      body: #"{"email":"you@example.com","password":"a long password"}"#)
        #expect(second.status == 403 && second.body.contains("registration_closed"), "\(second.body)")
    }

    @Test func anAgentWhoseSessionDirectoryIsRemovedExits() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let id = try await fixture.sessionId()
        let pid = try await Self.hostAgentPid(id)
        try FileManager.default.removeItem(atPath: fixture.directory.path("data/sessions/\(id)"))
        #expect(await waitFor(timeout: 15) { kill(pid, 0) != 0 }, "the agent lingered after its session was removed")
    }

    /// SIGTERM ends an agent even when the control plane cannot take its final snapshot: hung (the
    /// server stopped, its socket still accepting) within the upload's bound, gone at once.
    @Test func aTerminatedAgentEndsWhenTheControlPlaneIsHungOrGone() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        #expect(try await fixture.flare(["session", "up", "other", "--template", "base"]).status == 0)
        let hung = try await Self.hostAgentPid(try await fixture.sessionId())
        let gone = try await Self.hostAgentPid(try await fixture.sessionId("other"))

        kill(fixture.server.pid, SIGSTOP)
        defer { kill(fixture.server.pid, SIGCONT) }
        var started = Date()
        kill(hung, SIGTERM)
        // The grace period (0 s: no connections) and one bounded upload attempt (30 s + 1 s per 5 MiB).
        #expect(await waitFor(timeout: 50) { kill(hung, 0) != 0 }, "the agent outlived a hung control plane")
        let hungFor = Date().timeIntervalSince(started)
        #expect(hungFor > 20, "it gave the upload its time: \(hungFor) s")

        fixture.server.crash()
        started = Date()
        kill(gone, SIGTERM)
        #expect(await waitFor(timeout: 15) { kill(gone, 0) != 0 }, "the agent outlived a vanished control plane")
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test func parallelSnapshotUploadsCannotTogetherPassTheStorageQuota() async throws {
        let fixture = try await ServerFixture.withRunningSession(arguments: ["--max-storage-mib", "1"])
        let id = try await fixture.sessionId()
        let token = try Self.agentToken(pid: try await Self.hostAgentPid(id))
        let channel = fixture.directory.path("data/control/\(id)/agent.sock")
        let payload = fixture.directory.path("payload")
        try Data(count: 700 << 10).write(to: URL(fileURLWithPath: payload))
        func upload(rate: String) -> [String] {
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", "--limit-rate", rate,
             "--unix-socket", channel, "-X", "PUT", "-H", "Authorization: Bearer \(token)",
             "-H", "X-Flare-Sha256: 00", "--data-binary", "@" + payload, "http://x/agent/v1/snapshots"]
        }
        // The first upload trickles (about 7 s), holding its 700 KiB of the 1 MiB quota; the second
        // arrives meanwhile and would fit on its own, but not beside it.
        let slow = try BackgroundProcess(upload(rate: "100K"))
        try await Task.sleep(for: .milliseconds(1500))
        let second = try await TestProcess.run(upload(rate: "100M"), timeout: 40)
        #expect(second.stdout == "413", "the second upload passed the quota beside the first: \(second.stdout)")
        #expect(await waitFor(timeout: 30) { slow.output.hasPrefix("400") }, "the first passes, refused only for its digest: \(slow.output)")
    }

    @Test func registeredGatewayKeysAreListedAndRemovable() async throws {
        let fixture = try await ServerFixture()
        let gateway = try await StandaloneGateway(fixture, name: "retired")
        gateway.process.stop()
        let tokenFile = fixture.directory.path("data/gateway-token")
        let keys = { try await TestProcess.run([TestProcess.binary("flare-gateway"), "--control-plane", fixture.url,
                                          "--token-file", tokenFile, "--list-keys"]) }
        let listed = try await keys()
        #expect(listed.status == 0, "\(listed.stderr)")
        let line = listed.stdout.split(separator: "\n").first { $0.hasPrefix("retired") }
        let fingerprint = line?.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        #expect(fingerprint.hasPrefix("SHA256:"), "\(listed.stdout)")
        #expect(listed.stdout.contains("embedded"))
        let removed = try await TestProcess.run([TestProcess.binary("flare-gateway"), "--control-plane", fixture.url,
                                           "--token-file", tokenFile, "--remove-key", fingerprint])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(!(try await keys().stdout.contains("retired")))
        let again = try await TestProcess.run([TestProcess.binary("flare-gateway"), "--control-plane", fixture.url,
                                         "--token-file", tokenFile, "--remove-key", fingerprint])
        #expect(again.status != 0 && again.stderr.contains("not found"), "\(again.stderr)")
        let unauthorized = try await Curl.request(fixture.url + "/gateway/v1/keys", headers: ["Authorization": "Bearer nope"])
        #expect(unauthorized.status == 401)
    }

    // MARK: Docker runtime

    static let docker = ["--runtime", "docker"]

    @Test func fromADockerShellTheAgentItsSocketsAndTheServerAreOutOfReach() async throws {
        let fixture = try await ServerFixture(arguments: Self.docker)
        try await fixture.signUpWithTemplate()
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        let attack = try await fixture.flare(["ssh", "dev", "--", """
            id -u; rm -f /opt/flare-run/ssh.sock && echo REMOVED; ln -s /var/run/docker.sock /opt/flare-run/evil \
            && echo LINKED; ls /opt/flare-control >/dev/null 2>&1 && echo SEES-CONTROL || echo no-control; \
            cat /proc/1/environ >/dev/null 2>&1 && echo READ-AGENT-ENV || echo agent-env-hidden; \
            ls /var/lib/flare-agent >/dev/null 2>&1 && echo SEES-STATE || echo no-state; \
            curl -s --max-time 2 --unix-socket /opt/flare-control/agent.sock http://x/api/health || echo no-api; \
            kill -9 1 2>/dev/null && echo KILLED-AGENT || echo agent-safe; \
            touch /tmp/x; ln -f /tmp/x /opt/flare-run/ssh.sock 2>/dev/null && echo HARD-LINKED || echo no-hard-link; \
            ln /proc/1/root/opt/flare-control/agent.sock /tmp/c 2>/dev/null && echo LINKED-CONTROL || echo no-control-link
            """])
        let lines = attack.stdout.split(separator: "\n").map(String.init)
        #expect(lines == ["1000", "no-control", "agent-env-hidden", "no-state", "no-api", "agent-safe", "no-hard-link",
                          "no-control-link"],
                "\(attack.stdout) \(attack.stderr)")
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo still-served"]).stdout == "still-served\n")

        let inspect = try await TestProcess.run(["docker", "inspect", "-f",
                                           "{{.HostConfig.CapDrop}} {{.HostConfig.SecurityOpt}} {{.HostConfig.Memory}} "
                                           + "{{.HostConfig.PidsLimit}} {{.Config.User}}", "flare-\(try await fixture.sessionId())"])
        #expect(inspect.stdout == "[ALL] [no-new-privileges:true] \(4 << 30) 4096 0:0\n", "\(inspect.stdout)")
        let run = fixture.directory.path("data/run/\(try await fixture.sessionId())")
        let owner = try await TestProcess.run(["stat", "-c", "%u %a", run])
        #expect(owner.stdout == "\(geteuid()) 755\n", "the socket's directory is not the session's: \(owner.stdout)")
    }

    @Test func theReadmeManifestWithAPersistedHomeSurvivesStopAndStartUnderDocker() async throws {
        let fixture = try await ServerFixture(arguments: Self.docker)
        try await fixture.signUpWithTemplate(manifest: #"{"image":"burstflare/session-base","persistedPaths":["/home/flare"]}"#)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo kept > ~/note; mkdir -p ~/src && echo code > ~/src/main"])
            .status == 0)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let after = try await fixture.flare(["ssh", "dev", "--", "cat ~/note ~/src/main; stat -c %U ~ ~/note"])
        #expect(after.stdout == "kept\ncode\nflare\nflare\n", "\(after.stdout) \(after.stderr)")
    }

    @Test func aTemplateSetupRunsWithoutNetworkAndCannotEscalateInTheSession() async throws {
        let fixture = try await ServerFixture(arguments: Self.docker)
        try await fixture.signUpWithTemplate()
        let manifest = fixture.directory.path("hostile.json")
        let setup = "curl -s --max-time 3 http://127.0.0.1:\(fixture.port)/api/health && echo REACHED-SERVER; "
            + "echo interfaces=$(grep -c : /proc/net/dev); chmod u+s /bin/cat /usr/bin/find; echo setup-done"
        try #"{"image":"burstflare/session-base","setup":"\#(setup)"}"#.write(toFile: manifest, atomically: true, encoding: .utf8)
        let upload = try await fixture.flare(["template", "upload", "base", "--version", "2", "--manifest", manifest, "--wait"],
                                       timeout: 300)
        #expect(upload.status == 0, "\(upload.stderr)")
        let log = try await fixture.flare(["build", "log", "base@2"]).stdout
        #expect(log.contains("setup-done") && log.contains("interfaces=1"), "\(log)")
        #expect(!log.contains("REACHED-SERVER") && !log.contains("\"status\""), "the setup reached the server: \(log)")
        #expect(try await fixture.flare(["template", "promote", "base", "2"]).status == 0)
        #expect(try await fixture.flare(["session", "up", "hostile", "--template", "base"]).status == 0)
        // setuid binaries planted by the setup do not raise the session user (no-new-privileges).
        let escalate = try await fixture.flare(["ssh", "hostile", "--",
                                          "ls -l /bin/cat | cut -c1-10; cat /proc/1/environ >/dev/null 2>&1 && echo READ-AGENT-ENV || echo agent-env-hidden; find /var/lib/flare-agent -mindepth 1 2>/dev/null | grep -q . && echo SEES-STATE || echo no-state"])
        #expect(escalate.stdout == "-rwsr-xr-x\nagent-env-hidden\nno-state\n", "\(escalate.stdout) \(escalate.stderr)")
    }
}

extension IsolationTests {
    /// An image whose own `USER` is root still gives its shells the unprivileged session user, and
    /// the agent's token and state stay out of their reach.
    @Test func aRootUserImageRunsItsShellsAsTheSessionUser() async throws {
        let image = "flare-test/root-user-\(UUID().uuidString.prefix(8).lowercased())"
        let container = try await TestProcess.run(["docker", "create", "burstflare/session-base", "true"])
        let containerId = container.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(container.status == 0, "\(container.stderr)")
        defer {
            _ = try? TestProcess.runBlocking(["docker", "rm", "-f", containerId])
            _ = try? TestProcess.runBlocking(["docker", "rmi", "-f", image])
        }
        let committed = try await TestProcess.run(["docker", "commit", "--change", "USER root", containerId, image])
        #expect(committed.status == 0, "\(committed.stderr)")
        let user = try await TestProcess.run(["docker", "image", "inspect", "-f", "{{.Config.User}}", image]).stdout
        #expect(user == "root\n")

        let fixture = try await ServerFixture(arguments: Self.docker)
        try await fixture.signUpWithTemplate(manifest: #"{"image":"\#(image)","persistedPaths":["/home/flare"]}"#)
        let up = try await fixture.flare(["session", "up", "dev", "--template", "base"])
        #expect(up.status == 0, "\(up.stderr)")
        let shell = try await fixture.flare(["ssh", "dev", "--", """
            id -un; cat /proc/1/environ >/dev/null 2>&1 && echo READ-AGENT-ENV || echo agent-env-hidden; \
            ls /var/lib/flare-agent >/dev/null 2>&1 && echo SEES-STATE || echo no-state; echo kept > ~/note
            """])
        #expect(shell.stdout == "flare\nagent-env-hidden\nno-state\n", "\(shell.stdout) \(shell.stderr)")
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "cat ~/note; id -un"]).stdout == "kept\nflare\n")
    }

    /// Snapshots under docker are taken and restored by the session's user, not by the root agent:
    /// a root-only file in the persisted home never becomes theirs, a restore raced from the shell
    /// (its staging directory swapped for a link to /etc) writes nothing outside the session's
    /// files, and root-owned content in the image's home does not stop a wake.
    @Test func dockerSnapshotsRunAsTheUserSoARacedRestoreOrARootOnlyFileGivesThemNothing() async throws {
        let fixture = try await ServerFixture(arguments: Self.docker)
        try await fixture.signUpWithTemplate()
        let manifest = fixture.directory.path("root-home.json")
        let setup = "echo root-secret > /home/flare/rootonly; chmod 600 /home/flare/rootonly; "
            + "mkdir -p /home/flare/.sys/deep; echo x > /home/flare/.sys/deep/f; chown -R root:root /home/flare/.sys"
        try #"{"image":"burstflare/session-base","persistedPaths":["/home/flare"],"setup":"\#(setup)"}"#
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        let upload = try await fixture.flare(["template", "upload", "base", "--version", "2", "--manifest", manifest, "--wait"],
                                       timeout: 300)
        #expect(upload.status == 0, "\(upload.stderr)")
        #expect(try await fixture.flare(["template", "promote", "base", "2"]).status == 0)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        let id = try await fixture.sessionId()

        let prepared = try await fixture.flare(["ssh", "dev", "--", """
            cat ~/rootonly 2>/dev/null || echo unreadable; mkdir -p ~/bulk; \
            for i in $(seq 1 3000); do echo $i > ~/bulk/f$i; done; echo mine > ~/pwn; echo ready
            """])
        #expect(prepared.stdout == "unreadable\nready\n", "\(prepared.stdout) \(prepared.stderr)")
        let saved = try await fixture.flare(["snapshot", "save", "dev", "--json"])
        #expect(saved.status == 0, "\(saved.stderr)")
        let snapshot = try FlareJSON.decoder().decode(SnapshotInfo.self, from: Data(saved.stdout.utf8))

        // The attacker's loop: every staging directory that appears is moved away and replaced by
        // a link to /etc, until ~/stop exists.
        let loop = #"while [ ! -e ~/stop ]; do for d in ~/.flare-restore-*; do "#
            + #"if [ -d "$d" ] && [ ! -L "$d" ]; then mv "$d" "$d.moved" 2>/dev/null && ln -s /etc "$d" && echo swapped >> /tmp/race; fi; "#
            + #"done; done"#
        let started = try await fixture.flare(["ssh", "dev", "--", "setsid sh -c '\(loop)' >/dev/null 2>&1 </dev/null & echo started"])
        #expect(started.stdout == "started\n", "\(started.stderr)")
        for _ in 0 ..< 3 { _ = try await fixture.flare(["snapshot", "restore", "dev", snapshot.id]) }
        let raced = try await TestProcess.run(["docker", "exec", "flare-\(id)", "cat", "/tmp/race"])
        #expect(raced.stdout.contains("swapped"), "the loop never caught a staging directory: \(raced.stderr)")
        _ = try await fixture.flare(["ssh", "dev", "--", "touch ~/stop"])

        // Seen as root in the container: nothing of the snapshot reached /etc, nothing there is the user's.
        let etc = try await TestProcess.run(["docker", "exec", "flare-\(id)", "sh", "-c",
                                       "ls /etc/pwn /etc/bulk 2>/dev/null; find /etc -user flare 2>/dev/null | head -3; echo checked"])
        #expect(etc.stdout == "checked\n", "the restore wrote into /etc: \(etc.stdout)")

        // A wake restores over the image's root-owned home content; the root-only file stays out.
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let after = try await fixture.flare(["ssh", "dev", "--", "cat ~/pwn; ls ~/bulk | wc -l; cat ~/rootonly 2>&1 | head -c 40"])
        let lines = after.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.first == "mine" && lines.dropFirst().first == "3000", "\(after.stdout) \(after.stderr)")
        #expect(!after.stdout.contains("root-secret"), "a root-only file became the user's: \(after.stdout)")
    }
}
