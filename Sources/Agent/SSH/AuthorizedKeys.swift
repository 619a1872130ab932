import FlareSSH
import Foundation

/// The public keys allowed to log in; replaced as a whole when the control plane sends new ones.
public final class AuthorizedKeys: @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [SSHKey] = []
    private var refresher: (@Sendable () async throws -> [String])?
    private var lastRefresh = ContinuousClock.now - .seconds(60)

    public init(lines: [String] = []) {
        replace(with: lines)
    }

    /// Lets an unknown key trigger a fresh fetch (at most once a second), so a key the user
    /// registered a moment ago works at once.
    public func setRefresher(_ refresher: @escaping @Sendable () async throws -> [String]) {
        lock.withLock { self.refresher = refresher }
    }

    /// Reads an `authorized_keys` file (blank lines and `#` comments skipped).
    public convenience init(file: String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        self.init(lines: text.split(separator: "\n").map(String.init))
    }

    /// Replaces the set; lines that do not parse are skipped.
    public func replace(with lines: [String]) {
        let parsed = lines.compactMap { line -> SSHKey? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
            return try? SSHKey(publicKeyLine: trimmed)
        }
        lock.withLock { keys = parsed }
    }

    public var count: Int { lock.withLock { keys.count } }

    /// Whether `key` may log in. Called on a connection's own thread, so it may block briefly to
    /// refresh the set from the control plane.
    func contains(_ key: SSHKey) -> Bool {
        if lock.withLock({ keys.contains { $0.matchesPublic(key) } }) { return true }
        let refresher = lock.withLock { () -> (@Sendable () async throws -> [String])? in
            guard ContinuousClock.now - lastRefresh > .seconds(1) else { return nil }
            lastRefresh = ContinuousClock.now
            return self.refresher
        }
        guard let refresher else { return false }
        let done = DispatchSemaphore(value: 0)
        let fetched = FetchedLines()
        Task {
            fetched.lines = try? await refresher()
            done.signal()
        }
        guard done.wait(timeout: .now() + 5) == .success, let lines = fetched.lines else { return false }
        replace(with: lines)
        return lock.withLock { keys.contains { $0.matchesPublic(key) } }
    }
}

private final class FetchedLines: @unchecked Sendable {
    var lines: [String]?
}
