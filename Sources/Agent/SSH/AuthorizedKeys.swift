import FlareSSH
import Foundation

/// The public keys allowed to log in; replaced as a whole when the control plane sends new ones.
public final class AuthorizedKeys: @unchecked Sendable {
    private let lock = NSLock()
    private var keys: [SSHKey] = []

    public init(lines: [String] = []) {
        replace(with: lines)
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

    func contains(_ key: SSHKey) -> Bool {
        lock.withLock { keys.contains { $0.matchesPublic(key) } }
    }
}
