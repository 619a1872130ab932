import FlareContracts
import FlareSystem
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
        let (root, paths, owner) = (self.root, self.persistedPaths, self.owner)
        let report = try await onThread {
            guard let owner else { return try SnapshotRestorer().restore(archive: file, root: root, persistedPaths: paths) }
            return try Self.restore(file, root: root, persistedPaths: paths, as: owner)
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
        let owner = self.owner
        let manifest = try await onThread {
            guard let owner else { return try SnapshotWriter().create(root: root, persistedPaths: paths, output: file) }
            return try Self.create(file, root: root, persistedPaths: paths, as: owner)
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

extension SessionSnapshots {
    /// A root agent's restore: the persisted paths are opened and staged as root without following
    /// links, the archive (opened here, from the agent's own directory) is written into the staging
    /// directories by the user, and the result is swapped in through the descriptors.
    static func restore(_ file: String, root: String, persistedPaths: [String], as user: SessionUser) throws
        -> RestoreReport
    {
        let archive = open(file, O_RDONLY | O_CLOEXEC)
        guard archive >= 0 else { throw UserTask.Failure(description: "cannot open \(file): \(String(cString: strerror(errno)))") }
        defer { close(archive) }
        let staging = try SnapshotRestorer.stage(persistedPaths: persistedPaths, root: root,
                                                 owner: SnapshotRestorer.Owner(uid: user.uid, gid: user.gid))
        do {
            let output = try UserTask.run(["snapshot", "restore", "--root", root, "--input", "-", "--staged", staging.tag]
                + persistedPaths.flatMap { ["--path", $0] }, as: user, input: archive)
            try SnapshotRestorer.commit(staging)
            // "restored N entries, B bytes"
            let numbers = String(decoding: output, as: UTF8.self).split { !$0.isNumber }.compactMap { UInt64($0) }
            return RestoreReport(entryCount: Int(numbers.first ?? 0), totalBytes: numbers.dropFirst().first ?? 0)
        } catch {
            SnapshotRestorer.discard(staging)
            throw error
        }
    }

    /// A root agent's snapshot: the user walks their files; the archive goes to a file the agent
    /// opened in its own directory, handed over as descriptor 3.
    static func create(_ file: String, root: String, persistedPaths: [String], as user: SessionUser) throws
        -> SnapshotManifest
    {
        let archive = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard archive >= 0 else { throw UserTask.Failure(description: "cannot write \(file): \(String(cString: strerror(errno)))") }
        defer { close(archive) }
        let output = try UserTask.run(["snapshot", "create", "--root", root, "--output-fd", "3"]
            + persistedPaths.flatMap { ["--path", $0] }, as: user, input: devNull, extra: archive)
        guard let manifest = try? JSONDecoder().decode(SnapshotManifest.self, from: output) else {
            throw UserTask.Failure(description: "the snapshot process as \(user.name) printed no manifest")
        }
        return manifest
    }

    private static let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
}

/// Runs blocking work (libarchive) on a thread of its own, off Swift's cooperative pool.
