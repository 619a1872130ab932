import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct Session: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, start, stop and delete sessions.",
            subcommands: [Up.self, List.self, Get.self, Start.self, Stop.self, Delete.self, Events.self, Logs.self,
                          Revoke.self])
    }
}

extension Flare.Session {
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a session (if needed) and start it; waits until it runs.",
            discussion: "Example: flare session up dev --template base")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Session name.")
        var name: String
        @Option(help: "Template name or id.")
        var template: String
        @Option(help: "Seconds to wait for the session to run.")
        var timeout: Int = 120

        func run() async throws {
            let client = try await global.authenticatedClient()
            do {
                try await client.call(Endpoints.Sessions.create, SessionCreateRequest(name: name, template: template))
                printStatus("created session \(name)")
            } catch let error as FlareClientError where error.code == "session_exists" {
                printStatus("session \(name) exists")
            }
            let session = try await startAndWait(client: client, session: name, timeout: timeout)
            if output.json { try printJSON(session) } else { print("Session \(session.name) is running. Connect with `flare ssh \(session.name)`.") }
        }
    }

    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start (wake) a session; waits until it runs.", discussion: "Example: flare session start dev")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String
        @Option(help: "Seconds to wait for the session to run.")
        var timeout: Int = 120

        func run() async throws {
            let info = try await startAndWait(client: try await global.authenticatedClient(), session: session, timeout: timeout)
            print("Session \(info.name) is running.")
        }
    }

    struct Stop: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a session; it sleeps until started again.", discussion: "Example: flare session stop dev")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String

        func run() async throws {
            printStatus("stopping \(session)…")
            let info = try await global.authenticatedClient().call(Endpoints.Sessions.stop.at(session))
            print("Session \(info.name) is \(info.state.rawValue).")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a session and everything in it.", discussion: "Example: flare session delete dev")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String

        func run() async throws {
            try await global.authenticatedClient().call(Endpoints.Sessions.delete.at(session))
            print("Deleted session \(session).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your sessions.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let sessions = try await global.authenticatedClient().all(Endpoints.Sessions.list)
            if output.json { return try printJSON(sessions) }
            printTable(["NAME", "STATE", "TEMPLATE", "UPDATED", "ID"], sessions.map {
                [$0.name, $0.state.rawValue, "\($0.templateName)@\($0.templateVersion)", relative($0.updatedAt), $0.id]
            })
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one session.", discussion: "Example: flare session get dev --json")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Session name or id.")
        var session: String

        func run() async throws {
            let info = try await global.authenticatedClient().call(Endpoints.Sessions.get.at(session))
            if output.json { return try printJSON(info) }
            var rows = [
                ["name", info.name], ["id", info.id], ["state", info.state.rawValue], ["reason", info.stateReason],
                ["template", "\(info.templateName)@\(info.templateVersion)"],
                ["last heartbeat", relative(info.lastHeartbeatAt)], ["host key", info.hostPublicKey],
            ]
            if let activity = info.activity {
                rows += [
                    ["connections", "\(activity.openConnections) (\(activity.openChannels) channels)"],
                    ["bytes in/out", "\(byteCount(activity.bytesIn)) / \(byteCount(activity.bytesOut))"],
                    ["last input", relative(activity.lastInputAt)],
                ]
            }
            printTable(["FIELD", "VALUE"], rows)
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke every runtime token of a session, cutting its open connections now.",
            discussion: "Example: flare session revoke dev   (new `flare ssh` connections still work)")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String

        func run() async throws {
            let result = try await global.authenticatedClient().call(Endpoints.Sessions.revokeRuntimeTokens.at(session))
            print("Revoked \(result.revokedTokens) token(s); closed \(result.closedConnections) connection(s).")
        }
    }

    struct Logs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the session agent's recent log (its container's output under docker).",
            discussion: "Example: flare session logs dev --lines 50")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String
        @Option(help: "How many lines, from the end.")
        var lines: Int = 200

        func run() async throws {
            let text = try await global.authenticatedClient()
                .text(Endpoints.Sessions.logs.at(session).query(["lines": String(max(1, lines))]))
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a session's lifecycle events and why they happened.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Session name or id.")
        var session: String

        func run() async throws {
            let events = try await global.authenticatedClient().all(Endpoints.Sessions.events.at(session))
            if output.json { return try printJSON(events) }
            let formatter = ISO8601DateFormatter()
            printTable(["TIME", "FROM", "TO", "REASON"], events.map {
                [formatter.string(from: $0.createdAt), $0.fromState?.rawValue ?? "-", $0.toState.rawValue, $0.reason]
            })
        }
    }
}

/// Starts a session and polls until it runs, with a progress line on stderr.
func startAndWait(client: FlareClient, session: String, timeout: Int) async throws -> SessionInfo {
    let started = ContinuousClock.now
    var info = try await client.call(Endpoints.Sessions.start.at(session))
    let interactive = isatty(2) == 1
    while info.state == .starting {
        let elapsed = ContinuousClock.now - started
        if elapsed > .seconds(timeout) {
            throw CLIError("\(info.name) did not start within \(timeout)s; see `flare session events \(info.name)`")
        }
        if interactive {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            FileHandle.standardError.write(Data(String(format: "\rstarting %@… %.1fs", info.name, seconds).utf8))
        }
        try await Task.sleep(for: .milliseconds(200))
        info = try await client.call(Endpoints.Sessions.get.at(session))
    }
    if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    guard info.state == .running else {
        throw CLIError("\(info.name) is \(info.state.rawValue): \(info.stateReason)")
    }
    return info
}

/// `1.5 MiB`-style sizes.
func byteCount(_ bytes: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes), unit = 0
    while value >= 1024 && unit < units.count - 1 {
        value /= 1024
        unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}
