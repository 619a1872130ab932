import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

/// `flare`: the BurstFlare command line.
public struct Flare: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "flare",
        abstract: "Burst development environments: templates, sessions and real SSH.",
        discussion: """
            Quick start:
              flare auth register --email you@example.com --password-stdin
              flare template create base
              flare template upload base --version 1 --manifest manifest.json
              flare template promote base 1
              flare session up dev --template base
              flare ssh dev
            """,
        version: "0.1.0",
        subcommands: [Auth.self, Workspace.self, Audit.self, Template.self, Build.self, Session.self, Snapshot.self, SSH.self, PortForward.self, SSHProxy.self,
                      ConfigSSH.self])

    public init() {}

    /// Runs the CLI, printing failures as `error: …` with exit status 1.
    public static func runMain() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            printError(error.description)
            Foundation.exit(1)
        } catch let error as FlareClientError {
            printError(error.advice)
            Foundation.exit(1)
        } catch {
            exit(withError: error)
        }
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
}

func printStatus(_ message: String) {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
}

/// Prints rows as aligned columns under a header.
func printTable(_ header: [String], _ rows: [[String]]) {
    let widths = header.indices.map { column in
        ([header[column]] + rows.map { $0[column] }).map(\.count).max() ?? 0
    }
    for row in [header] + rows {
        let cells = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }
        print(cells.joined(separator: "  "))
    }
}

/// Prints a value as pretty JSON.
func printJSON(_ value: some Encodable) throws {
    // The API's own date format (ISO 8601 with milliseconds), so scripts can time transitions.
    let encoder = FlareJSON.encoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}

func relative(_ date: Date?) -> String {
    guard let date else { return "-" }
    let seconds = Int(Date().timeIntervalSince(date))
    switch seconds {
    case ..<60: return "\(max(0, seconds))s ago"
    case ..<3600: return "\(seconds / 60)m ago"
    case ..<86400: return "\(seconds / 3600)h ago"
    default: return "\(seconds / 86400)d ago"
    }
}

extension FlareClientError {
    /// The error as the CLI prints it: the server's own message, or what to check.
    var advice: String {
        switch self {
        case .unreachable(let baseURL, let reason):
            "cannot reach the BurstFlare server at \(baseURL) (\(reason)); is flare-server running? "
                + "Set the address with --url or FLARE_URL."
        case .refused(_, _, let message): message
        case .unreadable(let reason): "\(reason); are the CLI and server versions the same?"
        }
    }
}
