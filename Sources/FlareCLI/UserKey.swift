import FlareClient
import FlareContracts
import Foundation

/// The per-user SSH key the CLI makes on first use (`~/.config/flare/id_ed25519`) and registers
/// with the server, and the `known_hosts` file that pins each session's host key.
enum UserKey {
    static var privateKeyPath: URL { CLIConfig.directory.appendingPathComponent("id_ed25519") }
    static var knownHostsPath: URL { CLIConfig.directory.appendingPathComponent("known_hosts") }

    /// Creates the key if missing and registers it if the server does not know it yet.
    static func ensureRegistered(client: FlareClient) async throws {
        let publicPath = privateKeyPath.appendingPathExtension("pub")
        if !FileManager.default.fileExists(atPath: privateKeyPath.path) {
            let pair = OpenSSHKeyPair.generateEd25519(comment: "flare@\(ProcessInfo.processInfo.hostName)")
            try CLIConfig.writePrivate(Data(pair.privateKeyText.utf8), to: privateKeyPath)
            try CLIConfig.writePrivate(Data((pair.publicKeyLine + "\n").utf8), to: publicPath)
            printStatus("created SSH key \(privateKeyPath.path)")
        }
        guard let line = try? String(contentsOf: publicPath, encoding: .utf8), let key = SSHPublicKey(line: line) else {
            throw CLIError("\(publicPath.path) is not a valid public key; delete both key files to make a new one")
        }
        let registered = try await client.all(Endpoints.SSHKeys.list)
        if !registered.contains(where: { $0.fingerprint == key.fingerprint }) {
            try await client.call(Endpoints.SSHKeys.add, SSHKeyCreateRequest(name: "flare CLI", publicKey: key.line))
            printStatus("registered SSH key \(key.fingerprint)")
        }
    }

    /// The alias under which a session's host key is pinned.
    static func hostAlias(_ session: SessionInfo) -> String { "flare-\(session.id)" }

    /// Writes (or replaces) the session's lines in the flare `known_hosts` file: under its id
    /// (what `flare ssh` uses) and under `NAME.flare` (what `ssh NAME.flare` looks up).
    static func pinHostKey(of session: SessionInfo) throws {
        try pinHostKeys(of: [session])
    }

    static func pinHostKeys(of sessions: [SessionInfo]) throws {
        let names = Set(sessions.flatMap { [hostAlias($0), "\($0.name).flare"] })
        let existing = (try? String(contentsOf: knownHostsPath, encoding: .utf8)) ?? ""
        var lines = existing.split(separator: "\n").map(String.init)
            .filter { line in !names.contains(String(line.prefix { $0 != " " })) }
        for session in sessions {
            lines.append("\(hostAlias(session)) \(session.hostPublicKey)")
            lines.append("\(session.name).flare \(session.hostPublicKey)")
        }
        try CLIConfig.writePrivate(Data((lines.joined(separator: "\n") + "\n").utf8), to: knownHostsPath)
    }
}

/// Quotes an argument for the shell OpenSSH runs ProxyCommand with.
func shellQuoted(_ text: String) -> String {
    "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// The absolute path of the running flare binary.
func currentExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}
