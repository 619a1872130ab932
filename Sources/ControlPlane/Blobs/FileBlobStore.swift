import Crypto
import FlareContracts
import Foundation

/// Content-addressed blobs in a folder: `blobs/sha256/ab/abcdef…`. Writes are atomic (temp file,
/// fsync, rename, fsync of the folder); every read checks the digest.
public struct FileBlobStore: Sendable {
    let directory: URL

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

    /// Moves a fully written and synced temporary file into place under its digest.
    func ingest(_ temporary: URL, digest: String) throws {
        let target = path(of: digest)
        let folder = target.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        guard rename(temporary.path, target.path) == 0 else {
            throw BlobError(description: "cannot store blob \(digest): \(String(cString: strerror(errno)))")
        }
        let fd = open(folder.path, O_RDONLY | O_DIRECTORY)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
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

    func delete(_ digest: String) {
        try? FileManager.default.removeItem(at: path(of: digest))
    }

    /// Removes blobs nothing refers to, and temporary files older than an hour.
    func collectGarbage(keeping referenced: Set<String>) -> Int {
        var removed = 0
        let fm = FileManager.default
        let root = directory.appendingPathComponent("sha256")
        for folder in (try? fm.contentsOfDirectory(atPath: root.path)) ?? [] {
            for digest in (try? fm.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path)) ?? []
            where !referenced.contains(digest) {
                delete(digest)
                removed += 1
            }
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
