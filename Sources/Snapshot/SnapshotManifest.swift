/// What a snapshot holds, as measured while it was written.
public struct SnapshotManifest: Codable, Sendable, Equatable {
    /// Files, directories, links.
    public var entryCount: Int
    /// Bytes of file content (before compression).
    public var totalBytes: UInt64
    /// Bytes of the compressed archive.
    public var archiveBytes: UInt64
    /// Lowercase hex SHA-256 of the archive.
    public var sha256: String
    /// Entries that vanished or changed while the snapshot was taken (the archive stays valid).
    public var changedDuringSnapshot: [String]

    public init(entryCount: Int, totalBytes: UInt64, archiveBytes: UInt64, sha256: String,
                changedDuringSnapshot: [String]) {
        self.entryCount = entryCount
        self.totalBytes = totalBytes
        self.archiveBytes = archiveBytes
        self.sha256 = sha256
        self.changedDuringSnapshot = changedDuringSnapshot
    }
}

/// Bounds on what a restore accepts; past them it stops and writes nothing.
public struct RestoreLimits: Sendable {
    /// Sum of the entries' declared sizes (a sparse or highly compressed bomb stops here).
    public var maxTotalBytes: UInt64
    public var maxEntries: Int

    public init(maxTotalBytes: UInt64 = 20 << 30, maxEntries: Int = 500_000) {
        self.maxTotalBytes = maxTotalBytes
        self.maxEntries = maxEntries
    }
}
