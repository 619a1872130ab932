import FlareContracts
import Foundation
import Logging
import Snapshot

/// The agent's snapshot duties under a runtime: restore the latest good snapshot before serving,
/// and take, upload and verify a final one when the session stops.
public struct SessionSnapshots: Sendable {
    let client: ControlPlaneClient
    let root: String
    let persistedPaths: [String]
    let stateDirectory: String
    /// Restored files belong to this user when the agent runs as root.
    let owner: SessionUser?
    let logger: Logger

    public init(client: ControlPlaneClient, root: String, persistedPaths: [String], stateDirectory: String,
                owner: SessionUser? = nil, logger: Logger) {
        self.owner = owner
        self.client = client
        self.root = root
        self.persistedPaths = persistedPaths
        self.stateDirectory = stateDirectory
        self.logger = logger
    }

    /// Downloads, verifies and restores `reference` into the persisted paths.
    public func restore(_ reference: SnapshotReference) async throws {
        let file = stateDirectory + "/restore.tar.zst"
        defer { unlink(file) }
        let started = ContinuousClock.now
        try await client.downloadSnapshot(reference, to: file)
        let (root, paths) = (self.root, self.persistedPaths)
        let owner = self.owner.map { SnapshotRestorer.Owner(uid: $0.uid, gid: $0.gid) }
        let report = try await onThread {
            try SnapshotRestorer().restore(archive: file, root: root, persistedPaths: paths, owner: owner)
        }
        logger.info("restored snapshot", metadata: [
            "snapshot.id": "\(reference.id)", "snapshot.entries": "\(report.entryCount)",
            "duration": "\(ContinuousClock.now - started)",
        ])
    }

    /// Takes a snapshot of the persisted paths and uploads it; the control plane makes it the
    /// latest good one only once it is stored and its digest checked.
    @discardableResult
    public func takeAndUpload(reason: String) async throws -> SnapshotInfo? {
        guard !persistedPaths.isEmpty else { return nil }
        let file = stateDirectory + "/final.tar.zst"
        defer { unlink(file) }
        let started = ContinuousClock.now
        let (root, paths) = (self.root, self.persistedPaths)
        let manifest = try await onThread {
            try SnapshotWriter().create(root: root, persistedPaths: paths, output: file)
        }
        let stored = try await client.uploadSnapshot(
            file: file, sha256: manifest.sha256, entryCount: manifest.entryCount, totalBytes: manifest.totalBytes,
            reason: reason)
        logger.info("snapshot stored", metadata: [
            "snapshot.id": "\(stored.id)", "snapshot.bytes": "\(manifest.archiveBytes)",
            "snapshot.changed": "\(manifest.changedDuringSnapshot.count)", "duration": "\(ContinuousClock.now - started)",
        ])
        return stored
    }
}

/// Runs blocking work (libarchive) on a thread of its own, off Swift's cooperative pool.
