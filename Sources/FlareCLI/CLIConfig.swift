import FlareClient
import FlareContracts
import Foundation

/// What the CLI remembers between runs, in `~/.config/flare/config.json` (env FLARE_CONFIG_DIR),
/// readable by the user only.
struct CLIConfig: Codable {
    var url: String?
    var accessToken: String?
    /// When the access token stops working, by this machine's clock (counted from its receipt).
    var accessTokenExpiresAt: Date?
    /// Traded for the next access token when this one is about to expire; works once.
    var refreshToken: String?
    var signInId: String?
    var email: String?

    /// Forgets the sign-in (the tokens), keeping the server's URL.
    mutating func signOut() {
        accessToken = nil
        accessTokenExpiresAt = nil
        refreshToken = nil
        signInId = nil
    }

    /// Runs `body` holding the config's lock, so two `flare` processes refreshing at once do not
    /// both trade the same refresh token (the second would end the sign-in as a reused token).
    static func locked<T>(_ body: () async throws -> T) async throws -> T {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let descriptor = open(directory.appendingPathComponent("config.lock").path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError("could not open the lock in \(directory.path)") }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX) == 0 else { throw CLIError("could not lock \(directory.path)/config.lock") }
        return try await body()
    }

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

    /// Loads, changes and saves the config holding its lock (see ``locked(_:)``), so a refresh
    /// finishing in another `flare` cannot write an older sign-in back over this change.
    static func update(_ change: (inout CLIConfig) throws -> Void) async throws {
        try await locked {
            var config = load()
            try change(&config)
            try config.save()
        }
    }

    /// Writes `data` atomically: a new file made 0600 from the start, synced, renamed over the
    /// old one, in the config directory (0700, made so if needed).
    static func writePrivate(_ data: Data, to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        chmod(directory.path, 0o700)
        let temporary = url.appendingPathExtension("tmp-\(getpid())")
        unlink(temporary.path)
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CLIError("could not write \(url.path)") }
        let written = data.withUnsafeBytes { bytes in Glibc.write(descriptor, bytes.baseAddress, bytes.count) }
        let synced = fsync(descriptor) == 0
        close(descriptor)
        guard written == data.count, synced, rename(temporary.path, url.path) == 0 else {
            unlink(temporary.path)
            throw CLIError("could not write \(url.path)")
        }
    }
}

/// A failure the CLI reports as `error: …` and exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
