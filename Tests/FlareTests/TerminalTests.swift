import FlareContracts
import Foundation
import Testing

@Suite(.serialized, .timeLimit(.minutes(5)))
struct TerminalTests {
    @Test func browserTerminalFollowsResizesAndComesBackAfterAReconnect() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let api = fixture
        let session = try await fixture.sessionId()
        let token = try await api.runtimeToken(session: session, purpose: .terminal)

        let first = TerminalBox()
        try await TerminalDriver.run(gateway: fixture.url, session: session, token: token, query: "&cols=91&rows=27") {
            terminal in
            let ready = await terminal.waitForMessage("ready")
            #expect(ready?.resumed == false)
            first.id = ready?.terminal
            try await terminal.type("stty size; echo pid-$$\r")
            #expect(await terminal.waitForOutput { $0.contains("27 91") && $0.contains("pid-") })
            try await terminal.send(.resize(cols: 132, rows: 43))
            try await terminal.send(.input("stty size\r"))
            #expect(await terminal.waitForOutput { $0.contains("43 132") }, "\(terminal.text)")
            first.pid = terminal.text.firstMatch(of: /pid-(\d+)/).map { String($0.1) }
            try await terminal.type("echo before-reconnect\r")
            #expect(await terminal.waitForOutput { $0.contains("before-reconnect\r\n") })
        }
        let id = try #require(first.id)
        let pid = try #require(first.pid)

        // Output produced while no client is attached is kept and replayed too.
        let again = try await api.runtimeToken(session: session, purpose: .terminal)
        try await TerminalDriver.run(gateway: fixture.url, session: session, token: again, query: "&terminal=\(id)") {
            terminal in
            let ready = await terminal.waitForMessage("ready")
            #expect(ready?.resumed == true)
            #expect(ready?.terminal == id)
            #expect(await terminal.waitForOutput { $0.contains("before-reconnect") }, "replayed: \(terminal.text)")
            try await terminal.type("echo pid-$$-again\r")
            #expect(await terminal.waitForOutput { $0.contains("pid-\(pid)-again") }, "\(terminal.text)")
            try await terminal.type("exit 7\r")
            let exit = await terminal.waitForMessage("exit")
            #expect(exit?.status == 7)
        }

        // A shell that exited is not resumed: the same id starts a new one.
        let third = try await api.runtimeToken(session: session, purpose: .terminal)
        try await TerminalDriver.run(gateway: fixture.url, session: session, token: third, query: "&terminal=\(id)") {
            terminal in
            let ready = await terminal.waitForMessage("ready")
            #expect(ready?.resumed == false)
            #expect(ready?.terminal != id)
        }
    }

    @Test func revokingCutsATerminalAndEndsItsShell() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let api = fixture
        let session = try await fixture.sessionId()
        let token = try await api.runtimeToken(session: session, purpose: .terminal)
        let box = TerminalBox()
        let close = try await TerminalDriver.run(gateway: fixture.url, session: session, token: token) { terminal in
            box.id = await terminal.waitForMessage("ready")?.terminal
            // Computed so the echo of the typed line does not count as the shell's answer.
            try await terminal.type("echo $((6*7))-alive\r")
            #expect(await terminal.waitForOutput { $0.contains("42-alive") })
            let started = Date()
            let revoke = try await fixture.flare(["session", "revoke", "dev"])
            #expect(revoke.stdout.contains("closed 1 connection"),
                    "\(revoke.stdout) \(revoke.stderr); terminal saw \(terminal.controlMessages) \(terminal.text)")
            #expect(await terminal.waitForClose(timeout: 5))
            let cut = Date().timeIntervalSince(started)
            #expect(cut < 1.0, "cut after \(cut)s")
        }
        #expect(close?.closeCode == .policyViolation)
        #expect(close?.reason?.contains("revoked") == true)
        // The shell is gone: reconnecting with its id starts a new one.
        let again = try await api.runtimeToken(session: session, purpose: .terminal)
        let id = try #require(box.id)
        try await TerminalDriver.run(gateway: fixture.url, session: session, token: again, query: "&terminal=\(id)") {
            terminal in
            #expect(await terminal.waitForMessage("ready")?.resumed == false)
        }
    }

    /// A client that types into a session that does not read (here a shell busy sleeping, whose
    /// terminal buffer is full) is closed at 1 MiB queued, instead of filling the gateway's memory.
    @Test func typingIntoASessionThatDoesNotReadClosesTheTerminalNotTheGateway() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let session = try await fixture.sessionId()
        let token = try await fixture.runtimeToken(session: session, purpose: .terminal)
        let sent = TerminalBox()
        let close = try await TerminalDriver.run(gateway: fixture.url, session: session, token: token) { terminal in
            _ = await terminal.waitForMessage("ready")
            try await terminal.type("stty -icanon -echo; echo $((6*7))-raw; sleep 120\r")
            // Only once the terminal is raw: a canonical one drops input past a line instead of holding it.
            #expect(await terminal.waitForOutput { $0.contains("42-raw") })
            let chunk = String(repeating: "x", count: 64 * 1024)
            var count = 0
            // 16 MiB at most, in steps, so what is sent reaches the gateway rather than the
            // client's own buffers; a loaded machine takes a while to pass it along.
            while count < 256, !terminal.isClosed {
                guard (try? await terminal.type(chunk)) != nil else { break }
                count += 1
                if count % 16 == 0 { try await Task.sleep(for: .milliseconds(50)) }
            }
            sent.pid = String(count)
            #expect(await terminal.waitForClose(timeout: 30))
        }
        #expect(close?.closeCode == .messageTooLarge, "after \(sent.pid ?? "?") chunks of 64 KiB")
        #expect(close?.reason?.contains("not reading its terminal input") == true, "\(String(describing: close))")
        // The gateway serves the next terminal as before.
        let again = try await fixture.runtimeToken(session: session, purpose: .terminal)
        try await TerminalDriver.run(gateway: fixture.url, session: session, token: again) { terminal in
            #expect(await terminal.waitForMessage("ready") != nil)
            try await terminal.type("echo $((6*7))-fine\r")
            #expect(await terminal.waitForOutput { $0.contains("42-fine") })
        }
    }

    /// Revoking cuts a terminal whose shell is stuck handing input to a session that does not read it.
    @Test func revokingCutsATerminalStuckOnASessionThatDoesNotRead() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let session = try await fixture.sessionId()
        let token = try await fixture.runtimeToken(session: session, purpose: .terminal)
        let close = try await TerminalDriver.run(gateway: fixture.url, session: session, token: token) { terminal in
            _ = await terminal.waitForMessage("ready")
            try await terminal.type("stty -icanon -echo; echo $((6*7))-raw; sleep 120\r")
            // Only once the terminal is raw: a canonical one drops input past a line instead of holding it.
            #expect(await terminal.waitForOutput { $0.contains("42-raw") })
            // 2 MiB: more than the session's terminal, agent buffer and SSH window take (about
            // 1.5 MiB), less than that plus the 1 MiB the gateway queues.
            let chunk = String(repeating: "x", count: 64 * 1024)
            for _ in 0..<32 {
                try await terminal.type(chunk)
                try await Task.sleep(for: .milliseconds(10))
            }
            try await Task.sleep(for: .milliseconds(500))
            #expect(!terminal.isClosed, "closed before the revocation: \(terminal.controlMessages)")
            let started = Date()
            let revoke = try await fixture.flare(["session", "revoke", "dev"])
            #expect(revoke.stdout.contains("closed 1 connection"), "\(revoke.stdout) \(revoke.stderr)")
            #expect(await terminal.waitForClose(timeout: 5))
            let cut = Date().timeIntervalSince(started)
            #expect(cut < 1.0, "cut after \(cut)s")
        }
        #expect(close?.closeCode == .policyViolation)
    }

    @Test func anSSHTokenCannotOpenATerminal() async throws {
        let fixture = try await ServerFixture.withRunningSession()
        let api = fixture
        let session = try await fixture.sessionId()
        let sshToken = try await api.runtimeToken(session: session, purpose: .ssh)
        let (status, body) = try await RawHTTP.get(fixture.url, Endpoints.Gateway.terminal.at(session).query(["token": sshToken]).path)
        #expect(status == 403)
        #expect(body.contains("token_wrong_purpose"))
    }
}

final class TerminalBox: @unchecked Sendable {
    var id: String?
    var pid: String?
}
