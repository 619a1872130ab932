import CLibArchive
import Crypto
import FlareSystem
import Foundation

/// Writes a snapshot of a session's persisted paths: pax tar compressed with zstd, streamed to a
/// file with constant memory, hashed as it is written.
///
/// Regular files, directories (empty ones too), symlinks, hardlinks, permissions, owners and mtimes
/// are kept; sparse files stay sparse. A file that vanishes or changes during the walk is reported
/// in the manifest, and the archive stays valid. Blocking: run it on a thread of its own.
public struct SnapshotWriter: Sendable {
    /// zstd level (1-19).
    public var compressionLevel = 3
    /// zstd worker threads; 0 compresses on the calling thread.
    public var threads = 2
    /// False writes a plain tar (Docker build contexts take no zstd).
    public var compressed = true

    public init() {}

    /// Snapshots `persistedPaths` (absolute, as the session sees them) found under `root` into
    /// `output`, replacing it. Paths that do not exist are skipped.
    public func create(root: String, persistedPaths: [String], output: String) throws -> SnapshotManifest {
        try create(root: root, persistedPaths: persistedPaths, into: try ArchiveSink(path: output))
    }

    /// Like ``create(root:persistedPaths:output:)``, writing to an open descriptor (left open).
    public func create(root: String, persistedPaths: [String], outputDescriptor: Int32) throws -> SnapshotManifest {
        try create(root: root, persistedPaths: persistedPaths, into: ArchiveSink(descriptor: outputDescriptor))
    }

    private func create(root: String, persistedPaths: [String], into sink: ArchiveSink) throws -> SnapshotManifest {
        guard let archive = archive_write_new() else { throw SnapshotError(.archive, "archive_write_new failed") }
        defer { archive_write_free(archive) }
        archive_write_set_format_pax_restricted(archive)
        if compressed {
            archive_write_add_filter_zstd(archive)
            _ = archive_write_set_filter_option(archive, "zstd", "compression-level", String(compressionLevel))
            if threads > 0 { _ = archive_write_set_filter_option(archive, "zstd", "threads", String(threads)) }
        }
        archive_write_set_bytes_in_last_block(archive, 1)
        let opened = archive_write_open2(
            archive, Unmanaged.passUnretained(sink).toOpaque(), nil,
            { _, context, buffer, length in
                let sink = Unmanaged<ArchiveSink>.fromOpaque(context!).takeUnretainedValue()
                return sink.write(UnsafeRawBufferPointer(start: buffer, count: length)) ? length : -1
            }, nil, nil)
        try check(opened, archive)

        var walker = DiskWalker(root: root.hasSuffix("/") && root != "/" ? String(root.dropLast()) : root)
        for persisted in SnapshotPaths.topLevel(persistedPaths) {
            try walker.walk(SnapshotPaths.relative(persisted), into: archive)
        }
        try check(archive_write_close(archive), archive)
        try sink.finish()
        return SnapshotManifest(entryCount: walker.entries, totalBytes: walker.bytes, archiveBytes: sink.count,
                                sha256: sink.digest, changedDuringSnapshot: walker.changed)
    }
}

func check(_ rc: Int32, _ archive: OpaquePointer) throws {
    guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN else {
        throw SnapshotError(.archive, archiveError(archive, "libarchive failed"))
    }
}

/// libarchive's message for the last failure on `archive`, or `fallback`.
func archiveError(_ archive: OpaquePointer, _ fallback: String) -> String {
    archive_error_string(archive).map { String(cString: $0) } ?? fallback
}

/// Walks one persisted path on disk and appends its entries.
private struct DiskWalker {
    let root: String
    var entries = 0
    var bytes: UInt64 = 0
    var changed: [String] = []
    private let resolver: OpaquePointer? = archive_entry_linkresolver_new()

    init(root: String) {
        self.root = root
    }

    mutating func walk(_ relative: String, into archive: OpaquePointer) throws {
        let start = root == "/" ? "/" + relative : root + "/" + relative
        guard access(start, F_OK) == 0 || isSymlink(start) else { return }
        guard let disk = archive_read_disk_new() else { throw SnapshotError(.archive, "archive_read_disk_new failed") }
        defer { archive_read_free(disk) }
        archive_read_disk_set_symlink_physical(disk)
        archive_read_disk_set_standard_lookup(disk)
        archive_read_disk_set_behavior(disk, flare_readdisk_flags())
        archive_entry_linkresolver_set_strategy(resolver, archive_format(archive))
        guard archive_read_disk_open(disk, start) == ARCHIVE_OK else {
            throw SnapshotError(.io, archiveError(disk, "cannot read \(start)"))
        }
        let prefixLength = (root == "/" ? 1 : root.utf8.count + 1)
        while true {
            guard let entry = archive_entry_new() else { throw SnapshotError(.archive, "out of memory") }
            defer { archive_entry_free(entry) }
            let rc = archive_read_next_header2(disk, entry)
            if rc == ARCHIVE_EOF { break }
            let named = archive_entry_sourcepath(entry) ?? archive_entry_pathname(entry)
            if rc != ARCHIVE_OK && rc != ARCHIVE_WARN || named == nil {
                // Vanished between listing and reading, or not readable by the snapshot's user:
                // leave it out and say so.
                if rc == ARCHIVE_FATAL { throw SnapshotError(.io, archiveError(disk, "reading \(start) failed")) }
                let relative = named.map { String(cString: $0) }.map { String($0.utf8.dropFirst(prefixLength)) ?? $0 }
                changed.append(relative.flatMap { $0.isEmpty ? nil : $0 } ?? archiveError(disk, start))
                continue
            }
            let sourcePath = String(cString: named!)
            archive_read_disk_descend(disk)
            let name = String(sourcePath.utf8.dropFirst(prefixLength)) ?? sourcePath
            archive_entry_set_pathname(entry, name)
            try append(entry, name: name, from: disk, to: archive)
        }
    }

    private mutating func append(_ original: OpaquePointer, name: String, from disk: OpaquePointer,
                                 to archive: OpaquePointer) throws {
        var entry: OpaquePointer? = original
        var spare: OpaquePointer?
        archive_entry_linkify(resolver, &entry, &spare)
        guard let entry else { return }
        try check(archive_write_header(archive, entry), archive)
        entries += 1
        let declared = archive_entry_size(entry)
        if archive_entry_filetype(entry) == flare_ae_ifreg() && declared > 0 && archive_entry_hardlink(entry) == nil {
            // Sequential writes, as bsdtar does: holes are handed over as zeros, and the pax writer
            // skips them again using the sparse map archive_read_disk put on the entry.
            var progress: Int64 = 0
            var block: UnsafeRawPointer?
            var size = 0
            var offset: Int64 = 0
            while progress < declared {
                let rc = archive_read_data_block(disk, &block, &size, &offset)
                if rc == ARCHIVE_EOF { break }
                guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN, let block else {
                    changed.append(name)
                    break
                }
                if offset > progress {
                    try writeZeros(min(offset, declared) - progress, to: archive, name: name)
                    progress = min(offset, declared)
                }
                // A file that grew is cut at the size in its header.
                let count = min(Int64(size), declared - progress)
                guard count > 0 else { break }
                guard archive_write_data(archive, block, Int(count)) == count else {
                    throw SnapshotError(.archive, archiveError(archive, "writing \(name) failed"))
                }
                progress += count
            }
            if progress < declared {
                // A trailing hole, or a file that shrank while it was read: pad to the header's size.
                if archive_entry_sparse_count(entry) == 0 && progress > 0 { changed.append(name) }
                try writeZeros(declared - progress, to: archive, name: name)
            }
            bytes += UInt64(declared)
        }
        try check(archive_write_finish_entry(archive), archive)
        if let spare { archive_entry_free(spare) }
    }

    private func writeZeros(_ count: Int64, to archive: OpaquePointer, name: String) throws {
        var left = count
        while left > 0 {
            let chunk = Int(min(left, Int64(Self.zeros.count)))
            let written = Self.zeros.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, chunk) }
            guard written > 0 else { throw SnapshotError(.archive, archiveError(archive, "writing \(name) failed")) }
            left -= Int64(written)
        }
    }

    private static let zeros = [UInt8](repeating: 0, count: 1 << 16)

    private func isSymlink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFLNK
    }
}

/// Where archive bytes go: a file, hashed and counted on the way.
final class ArchiveSink {
    private let descriptor: Int32
    private let path: String
    private let ownsDescriptor: Bool
    private var hasher = SHA256()
    private(set) var count: UInt64 = 0

    init(path: String) throws {
        self.path = path
        ownsDescriptor = true
        descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw SnapshotError(.io, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    init(descriptor: Int32) {
        self.descriptor = descriptor
        path = "descriptor \(descriptor)"
        ownsDescriptor = false
    }

    deinit { if ownsDescriptor { close(descriptor) } }

    func write(_ bytes: UnsafeRawBufferPointer) -> Bool {
        hasher.update(bufferPointer: bytes)
        count += UInt64(bytes.count)
        var offset = 0
        while offset < bytes.count {
            let n = Glibc.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    /// Flushes the file to disk.
    func finish() throws {
        guard Descriptors.sync(descriptor) else { throw SnapshotError(.io, "cannot sync \(path)") }
    }

    var digest: String { hasher.finalize().map { String(format: "%02x", $0) }.joined() }
}
