import FlareClient
import FlareContracts
import Foundation

/// What the CLI remembers between runs, in `~/.config/flare/config.json` (env FLARE_CONFIG_DIR),
/// readable by the user only.
struct CLIConfig: Codable {
    var url: String?
    var accessToken: String?
    var email: String?

    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["FLARE_CONFIG_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? NSHomeDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".config/flare")
    }

    static var file: URL { directory.appendingPathComponent("config.json") }

    static func load() -> CLIConfig {
        guard let data = try? Data(contentsOf: file) else { return CLIConfig() }
        return (try? JSONDecoder().decode(CLIConfig.self, from: data)) ?? CLIConfig()
    }

    func save() throws {
        try Self.writePrivate(try JSONEncoder().encode(self), to: Self.file)
    }

    /// Writes `data` atomically with mode 0600, creating the config directory (0700) if needed.
    static func writePrivate(_ data: Data, to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let temporary = url.appendingPathExtension("tmp-\(getpid())")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data,
                                             attributes: [.posixPermissions: 0o600]),
              rename(temporary.path, url.path) == 0
        else { throw CLIError("could not write \(url.path)") }
    }
}

/// A failure the CLI reports as `error: …` and exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
