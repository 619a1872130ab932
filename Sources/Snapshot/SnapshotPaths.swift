/// The path policy shared by writer and restorer: persisted paths are absolute, inside the
/// session; archive entries name them relative to the session root (`home/flare/x`).
enum SnapshotPaths {
    /// The persisted paths not inside another one (a nested one is already part of its parent).
    static func topLevel(_ paths: [String]) -> [String] {
        let sorted = Array(Set(paths)).sorted()
        return sorted.filter { path in !sorted.contains { $0 != path && path.hasPrefix($0 + "/") } }
    }

    /// `"/home/flare"` → `"home/flare"`.
    static func relative(_ persisted: String) -> String {
        String(persisted.drop { $0 == "/" })
    }

    /// The normalized components of an entry name, or nil if it is absolute, empty or climbs.
    static func components(ofEntry name: String) -> [Substring]? {
        guard !name.isEmpty, !name.hasPrefix("/"), !name.contains("\0") else { return nil }
        var parts: [Substring] = []
        for part in name.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { return nil }
            parts.append(part)
        }
        return parts.isEmpty ? nil : parts
    }

    /// The persisted path (relative form) that contains `entry`, if any.
    static func owner(of entry: [Substring], in allowed: [[Substring]]) -> [Substring]? {
        allowed.first { entry.count >= $0.count && Array(entry.prefix($0.count)) == $0 }
    }

    /// Whether a relative symlink target stays inside `persisted` when resolved from the link's
    /// directory (lexically).
    static func staysInside(linkAt entry: [Substring], target: String, persisted: [Substring]) -> Bool {
        var resolved = Array(entry.dropLast())
        for part in target.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." {
                guard resolved.count > persisted.count else { return false }
                resolved.removeLast()
            } else {
                resolved.append(part)
            }
        }
        return true
    }
}
