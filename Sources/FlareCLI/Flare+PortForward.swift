import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct PortForward: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "port-forward",
            abstract: "Forward local ports to ports in a session, until Ctrl-C.",
            discussion: """
                Each forward is LOCAL:REMOTE (a port on 127.0.0.1 here to a port on the session's
                localhost), PORT (the same number both sides), or LOCAL:HOST:PORT (a host the session
                can reach). Runs OpenSSH's forwarding through the gateway; a port already in use here
                is an error.

                Examples:
                  flare port-forward dev 8080:80
                  flare port-forward dev 3000 5432:db.internal:5432
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String
        @Argument(help: "LOCAL:REMOTE, PORT or LOCAL:HOST:PORT, one or more.")
        var forwards: [String]

        func validate() throws {
            guard !forwards.isEmpty else { throw ValidationError("name at least one forward, e.g. 8080:80") }
            for forward in forwards { _ = try Self.parse(forward) }
        }

        /// `8080:80` → `127.0.0.1:8080:localhost:80`.
        static func parse(_ text: String) throws -> (local: Int, host: String, remote: Int) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            func port(_ text: String) throws -> Int {
                guard let port = Int(text), (1...65535).contains(port) else {
                    throw ValidationError("'\(text)' in '\(text)' is not a port (1-65535)")
                }
                return port
            }
            switch parts.count {
            case 1: return (try port(parts[0]), "localhost", try port(parts[0]))
            case 2: return (try port(parts[0]), "localhost", try port(parts[1]))
            case 3 where !parts[1].isEmpty: return (try port(parts[0]), parts[1], try port(parts[2]))
            default: throw ValidationError("'\(text)' is not LOCAL:REMOTE, PORT or LOCAL:HOST:PORT")
            }
        }

        func run() async throws {
            let (info, arguments) = try await openSSHArguments(session: session, global: global)
            var ssh = arguments + ["-N", "-o", "ExitOnForwardFailure=yes"]
            for forward in forwards {
                let (local, host, remote) = try Self.parse(forward)
                ssh += ["-L", "127.0.0.1:\(local):\(host):\(remote)"]
                printStatus("forwarding 127.0.0.1:\(local) → \(info.name):\(host == "localhost" ? "" : host + ":")\(remote)")
            }
            printStatus("press Ctrl-C to stop")
            try execSSH(ssh + ["flare@\(info.name).flare"])
        }
    }
}
