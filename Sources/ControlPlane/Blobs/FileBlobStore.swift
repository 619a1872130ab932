import Crypto
import FlareContracts
import FlareSystem
import Foundation

/// Content-addressed blobs in a folder: `blobs/sha256/ab/abcdef…`. Writes are atomic (temp file,
/// fsync, rename, fsync of the folder); every read checks the digest.
///
/// Ingest and garbage collection race: a blob is stored before the snapshot row that refers to
/// it. ``Ingests`` closes that window: an ingested blob stays pinned until its row is written
/// (``release(_:)``), and a collection skips any blob ingested since it began.
public struct FileBlobStore: Sendable {
    let directory: URL
    private let ingests = Ingests()

    final class Ingests: @unchecked Sendable {
        let lock = NSLock()
        /// Ingested, row not yet written.
        var pinned: [String: Int] = [:]
        /// How many times each digest was ingested (by this process).
        var generation: [String: Int] = [:]
    }

    public init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("tmp"),
                                                withIntermediateDirectories: true)
    }

    struct BlobError: Error, CustomStringConvertible {
        let description: String
    }

    /// A new temporary file inside the store (same filesystem, so ``ingest`` can rename it).
    func temporaryFile() -> URL {
        directory.appendingPathComponent("tmp").appendingPathComponent(UUID().uuidString)
    }

    func path(of digest: String) -> URL {
        directory.appendingPathComponent("sha256").appendingPathComponent(String(digest.prefix(2)))
            .appendingPathComponent(digest)
    }

    /// Moves a fully written and synced temporary file into place under its digest. The blob is
    /// safe from collection until ``release(_:)``, which the caller calls once it is referenced.
    func ingest(_ temporary: URL, digest: String) throws {
        ingests.lock.withLock {
            ingests.pinned[digest, default: 0] += 1
            ingests.generation[digest, default: 0] += 1
        }
        let target = path(of: digest)
        let folder = target.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        guard rename(temporary.path, target.path) == 0 else {
            throw BlobError(description: "cannot store blob \(digest): \(String(cString: strerror(errno)))")
        }
        Descriptors.syncDirectory(folder.path)
    }

    /// The blob's path once its content has been checked against `digest`.
    func verifiedPath(of digest: String) throws -> URL {
        let url = path(of: digest)
        guard let handle = try? FileHandle(forReadingFrom: url) else {
            throw BlobError(description: "blob \(digest) is missing")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        guard Self.hex(hasher.finalize()) == digest else {
            throw BlobError(description: "blob \(digest) is corrupt (its content no longer matches its digest)")
        }
        return url
    }

    /// The blob ingested with ``ingest(_:digest:)`` is now referenced (or was not after all).
    func release(_ digest: String) {
        ingests.lock.withLock {
            ingests.pinned[digest, default: 1] -= 1
            if ingests.pinned[digest] == 0 { ingests.pinned[digest] = nil }
        }
    }

    func delete(_ digest: String) {
        try? FileManager.default.removeItem(at: path(of: digest))
    }

    /// Removes blobs nothing refers to, and temporary files older than an hour. `referenced` is
    /// read after the blobs on disk are noted, and a blob ingested meanwhile is kept.
    func collectGarbage(referenced: () async throws -> Set<String>) async throws -> Int {
        var removed = 0
        let fm = FileManager.default
        let root = directory.appendingPathComponent("sha256")
        var candidates: [String] = []
        for folder in (try? fm.contentsOfDirectory(atPath: root.path)) ?? [] {
            candidates += (try? fm.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path)) ?? []
        }
        let before = ingests.lock.withLock { ingests.generation }
        let keep = try await referenced()
        for digest in candidates where !keep.contains(digest) {
            let unchanged = ingests.lock.withLock {
                ingests.pinned[digest] == nil && ingests.generation[digest] == before[digest]
            }
            guard unchanged else { continue }
            delete(digest)
            removed += 1
        }
        let tmp = directory.appendingPathComponent("tmp")
        for name in (try? fm.contentsOfDirectory(atPath: tmp.path)) ?? [] {
            let url = tmp.appendingPathComponent(name)
            if let modified = try? fm.attributesOfItem(atPath: url.path)[.modificationDate] as? Date,
               modified.timeIntervalSinceNow < -3600
            {
                try? fm.removeItem(at: url)
            }
        }
        return removed
    }

    static func hex(_ digest: SHA256.Digest) -> String {
        digest.hex
    }
}
