import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct Audit: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Read a workspace's audit log (admins and owners), newest first.",
            discussion: """
                Every change is a line: when, who, what, on what, its outcome (success, refused, failed),
                the request id the client was given, and the address it came from.

                Examples:
                  flare audit
                  flare audit --workspace platform --since 1h --action session.
                  flare audit --actor dev@example.com --json
                """)
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Option(help: "The workspace (name or id; default: your personal one).")
        var workspace: String?
        @Option(help: "Only lines since then: a duration back (30m, 2h, 7d) or an ISO 8601 time.")
        var since: String?
        @Option(help: "Only lines by this account (an email).")
        var actor: String?
        @Option(help: "Only actions starting with this (session., template.promote, request.refused).")
        var action: String?
        @Option(help: "At most this many lines (1-1000).")
        var limit = 100

        func run() async throws {
            let client = try await global.authenticatedClient()
            let place: String
            if let workspace {
                place = workspace
            } else {
                guard let personal = try await client.call(Endpoints.Workspaces.list).first(where: \.personal) else {
                    throw CLIError("you have no personal workspace; pass --workspace")
                }
                place = personal.id
            }
            var query: [(String, String)] = []
            if let since { query.append(("since", try Self.instant(since).ISO8601Format())) }
            if let actor { query.append(("actor", actor)) }
            if let action { query.append(("action", action)) }
            let page = try await client.page(Endpoints.Workspaces.audit.at(place).query(query), limit: min(max(limit, 1), 1000))
            if output.json { return try printJSON(page.items) }
            printTable(["WHEN", "ACTOR", "ACTION", "TARGET", "OUTCOME", "ADDRESS", "REQUEST"], page.items.map {
                [relative($0.at), $0.actor ?? "-", $0.action, $0.target, $0.outcome, $0.address ?? "-", $0.requestId ?? "-"]
            })
        }

        /// `30m`, `2h`, `7d` back from now, or an ISO 8601 time.
        static func instant(_ text: String) throws -> Date {
            let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400]
            if let unit = text.last.flatMap({ units[$0] }), let count = Double(text.dropLast()), count >= 0 {
                return Date().addingTimeInterval(-count * unit)
            }
            guard let date = try? Date(text, strategy: .iso8601) else {
                throw CLIError("--since takes a duration (30m, 2h, 7d) or an ISO 8601 time such as 2026-12-01T09:00:00Z")
            }
            return date
        }
    }
}
