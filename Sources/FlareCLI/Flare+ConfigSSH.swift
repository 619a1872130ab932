import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct ConfigSSH: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config-ssh",
            abstract: "Let plain ssh, scp, sftp and rsync reach sessions as NAME.flare.",
            discussion: """
                Writes one managed block to ~/.ssh/config (Host *.flare, with `flare ssh-proxy` as the
                ProxyCommand) and pins every session's host key in ~/.config/flare/known_hosts, so
                strict host-key checking stays on. Run it again after creating sessions; it is idempotent.

                Examples:
                  flare config-ssh && ssh dev.flare
                  rsync -av ./src/ dev.flare:src/
                  flare config-ssh --remove
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "The ssh config file to edit (default ~/.ssh/config).")
        var sshConfig: String?
        @Flag(help: "Take the managed block out again.")
        var remove = false

        static let begin = "# --- BEGIN flare (managed by `flare config-ssh`; edits inside are overwritten) ---"
        static let end = "# --- END flare ---"

        func run() async throws {
            let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
            let path = sshConfig ?? home + "/.ssh/config"
            let existing = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            var kept = Self.withoutBlock(existing)
            if remove {
                try write(kept, to: path)
                print("Removed the flare block from \(path).")
                return
            }
            let client = try await global.authenticatedClient()
            try await UserKey.ensureRegistered(client: client)
            let sessions = try await client.all(Endpoints.Sessions.list)
            try UserKey.pinHostKeys(of: sessions)
            let proxy = [currentExecutable(), "ssh-proxy", "%n", "--url", global.resolvedURL].map(shellQuoted)
                .joined(separator: " ")
            let block = [
                Self.begin,
                "Host *.flare",
                "  User flare",
                "  ProxyCommand \(proxy)",
                "  IdentityFile \(UserKey.privateKeyPath.path)",
                "  IdentitiesOnly yes",
                "  UserKnownHostsFile \(UserKey.knownHostsPath.path)",
                "  StrictHostKeyChecking yes",
                "  ServerAliveInterval 30",
                Self.end,
            ].joined(separator: "\n")
            if !kept.isEmpty && !kept.hasSuffix("\n") { kept += "\n" }
            // First in the file, so it wins over broader Host patterns further down.
            try write(block + "\n" + (kept.isEmpty ? "" : "\n" + kept), to: path)
            print("Wrote the flare block to \(path); \(sessions.count) session host key(s) pinned. Try `ssh \(sessions.first?.name ?? "NAME").flare`.")
        }

        /// The file without the managed block (and the blank line that followed it).
        static func withoutBlock(_ text: String) -> String {
            guard let start = text.range(of: begin), let stop = text.range(of: end, range: start.upperBound..<text.endIndex)
            else { return text }
            var after = text[stop.upperBound...]
            while after.first == "\n" { after = after.dropFirst() }
            return String(text[..<start.lowerBound]) + after
        }

        private func write(_ text: String, to path: String) throws {
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            try CLIConfig.writePrivate(Data(text.utf8), to: url)
        }
    }
}
