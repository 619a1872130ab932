import CLibArchive
import Foundation

/// What a restore put back.
public struct RestoreReport: Sendable, Equatable {
    public var entryCount: Int
    public var totalBytes: UInt64
}

/// Restores a snapshot into a session's persisted paths, and nowhere else.
///
/// Every entry is checked before it is written: no absolute or `..` names, nothing outside the
/// persisted paths, no device nodes, FIFOs or sockets, no relative symlink that climbs out of its
/// persisted path, no hardlink to outside; setuid and setgid bits are dropped; the declared sizes
/// and the entry count are bounded. Everything is extracted into a staging directory first and
/// swapped in only when the whole archive was read cleanly, so a bad or truncated archive leaves
/// the previous content exactly as it was. Blocking: run it on a thread of its own.
public struct SnapshotRestorer: Sendable {
    public var limits = RestoreLimits()

    public init() {}

    /// Whose the restored files are when a privileged agent restores for the session's user:
    /// every entry is written as theirs, whatever owner the archive names.
    public struct Owner: Sendable, Equatable {
        public var uid: uid_t
        public var gid: gid_t

        public init(uid: uid_t, gid: gid_t) {
            self.uid = uid
            self.gid = gid
        }
    }

    /// Replaces each of `persistedPaths` under `root` with the snapshot's content (an empty
    /// directory where the snapshot has none).
    public func restore(archive path: String, root: String, persistedPaths: [String], owner: Owner? = nil) throws
        -> RestoreReport
    {
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        guard let realRoot = realpath(root, nil) else {
            throw SnapshotError(.io, "cannot restore into \(root): \(String(cString: strerror(errno)))")
        }
        let base = String(cString: realRoot)
        free(realRoot)
        let top = SnapshotPaths.topLevel(persistedPaths)
        let allowed = top.compactMap { SnapshotPaths.components(ofEntry: SnapshotPaths.relative($0)) }
        // Staged next to the persisted paths (their deepest common parent), so the final renames stay
        // on one filesystem and an agent that may not write to `/` (a container's user) can restore.
        var parent = allowed.first.map { Array($0.dropLast()) } ?? []
        for parts in allowed.dropFirst() {
            parent = Array(zip(parent, parts.dropLast()).prefix { $0 == $1 }.map(\.0))
        }
        let stagingParent = (base == "/" ? "" : base) + parent.map { "/" + $0 }.joined()
        try? FileManager.default.createDirectory(atPath: stagingParent.isEmpty ? "/" : stagingParent,
                                                 withIntermediateDirectories: true)
        let staging = stagingParent + "/.flare-restore-\(UInt32.random(in: .min ... .max))"
        guard mkdir(staging, 0o700) == 0 else {
            throw SnapshotError(.io, "cannot create \(staging): \(String(cString: strerror(errno)))")
        }
        defer { try? FileManager.default.removeItem(atPath: staging) }

        let report = try extract(path, into: staging, allowed: allowed, owner: owner)
        for parts in allowed {
            let relative = parts.joined(separator: "/")
            let staged = staging + "/" + relative
            let live = (base == "/" ? "" : base) + "/" + relative
            if access(staged, F_OK) != 0 {
                try FileManager.default.createDirectory(atPath: staged, withIntermediateDirectories: true)
                if let owner { _ = lchown(staged, owner.uid, owner.gid) }
            }
            try FileManager.default.createDirectory(atPath: (live as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            var info = stat()
            if lstat(live, &info) == 0 {
                let old = staging + "/.previous-\(UInt32.random(in: .min ... .max))"
                if rename(live, old) != 0 {
                    // overlayfs (a container's root) cannot rename a directory that comes from an
                    // image layer, such as /home/flare: put the restored content inside it instead.
                    guard errno == EXDEV, info.st_mode & S_IFMT == S_IFDIR else {
                        throw SnapshotError(.io, "cannot move \(live) aside: \(String(cString: strerror(errno)))")
                    }
                    try Self.replaceContents(of: live, with: staged)
                    continue
                }
            }
            guard rename(staged, live) == 0 else {
                throw SnapshotError(.io, "cannot move the restored \(relative) into place: \(String(cString: strerror(errno)))")
            }
        }
        return report
    }

    /// Empties `live` (without following links) and moves `staged`'s entries into it, then gives
    /// it `staged`'s mode, owner and times.
    static func replaceContents(of live: String, with staged: String) throws {
        let fm = FileManager.default
        for name in try fm.contentsOfDirectory(atPath: live) {
            try fm.removeItem(atPath: live + "/" + name)
        }
        for name in try fm.contentsOfDirectory(atPath: staged) {
            guard rename(staged + "/" + name, live + "/" + name) == 0 else {
                throw SnapshotError(.io, "cannot move the restored \(name) into \(live): \(String(cString: strerror(errno)))")
            }
        }
        var info = stat()
        guard lstat(staged, &info) == 0 else { return }
        // Through a descriptor opened without following a link: `live` is in the user's reach.
        let directory = open(live, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { return }
        defer { close(directory) }
        _ = fchown(directory, info.st_uid, info.st_gid)
        _ = fchmod(directory, info.st_mode & 0o7777)
        var times = [info.st_atim, info.st_mtim]
        _ = futimens(directory, &times)
    }

    private func extract(_ path: String, into staging: String, allowed: [[Substring]], owner: Owner?) throws
        -> RestoreReport
    {
        guard let reader = archive_read_new(), let writer = archive_write_disk_new() else {
            throw SnapshotError(.archive, "out of memory")
        }
        defer {
            archive_read_free(reader)
            archive_write_free(writer)
        }
        archive_read_support_filter_zstd(reader)
        archive_read_support_filter_none(reader)
        archive_read_support_format_tar(reader)
        // Owners are restored only by root, and then as the session user when one is given.
        archive_write_disk_set_options(writer, flare_extract_flags(geteuid() == 0 ? 1 : 0))
        archive_write_disk_set_standard_lookup(writer)
        guard archive_read_open_filename(reader, path, 1 << 16) == ARCHIVE_OK else {
            throw SnapshotError(.corrupt, "cannot open snapshot \(path): \(archiveError(reader, "unreadable"))")
        }
        var entries = 0
        var bytes: UInt64 = 0
        var entry: OpaquePointer?
        while true {
            let rc = archive_read_next_header(reader, &entry)
            if rc == ARCHIVE_EOF { break }
            guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN, let entry else {
                throw SnapshotError(.corrupt, "the snapshot is damaged: \(archiveError(reader, "bad header"))")
            }
            entries += 1
            guard entries <= limits.maxEntries else {
                throw SnapshotError(.limitExceeded, "the snapshot has more than \(limits.maxEntries) entries")
            }
            let name = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            let parts = try check(entry, named: name, allowed: allowed)
            let declared = UInt64(max(0, archive_entry_size(entry)))
            bytes += declared
            guard bytes <= limits.maxTotalBytes else {
                throw SnapshotError(.limitExceeded, "the snapshot holds more than \(limits.maxTotalBytes) bytes")
            }
            archive_entry_set_pathname(entry, staging + "/" + parts.joined(separator: "/"))
            if let link = archive_entry_hardlink(entry).map({ String(cString: $0) }) {
                let target = SnapshotPaths.components(ofEntry: link)!.joined(separator: "/")
                archive_entry_set_hardlink(entry, staging + "/" + target)
            }
            archive_entry_set_perm(entry, archive_entry_perm(entry) & ~mode_t(0o6000))  // no setuid or setgid
            if let owner {
                archive_entry_set_uid(entry, Int64(owner.uid))
                archive_entry_set_gid(entry, Int64(owner.gid))
                archive_entry_set_uname(entry, nil)
                archive_entry_set_gname(entry, nil)
            }
            guard archive_write_header(writer, entry) == ARCHIVE_OK else {
                throw SnapshotError(.io, "cannot restore \(name): \(archiveError(writer, "write failed"))")
            }
            try copyData(of: name, from: reader, to: writer)
            guard archive_write_finish_entry(writer) == ARCHIVE_OK else {
                throw SnapshotError(.io, "cannot restore \(name): \(archiveError(writer, "write failed"))")
            }
        }
        return RestoreReport(entryCount: entries, totalBytes: bytes)
    }

    /// The entry's normalized components, or a refusal saying what is wrong with it.
    private func check(_ entry: OpaquePointer, named name: String, allowed: [[Substring]]) throws -> [Substring] {
        guard let parts = SnapshotPaths.components(ofEntry: name) else {
            throw SnapshotError(.unsafeEntry, "refused \(name): absolute or '..' names are not allowed")
        }
        guard let persisted = SnapshotPaths.owner(of: parts, in: allowed) else {
            throw SnapshotError(.unsafeEntry, "refused \(name): outside the persisted paths")
        }
        if let link = archive_entry_hardlink(entry).map({ String(cString: $0) }) {
            guard let target = SnapshotPaths.components(ofEntry: link), SnapshotPaths.owner(of: target, in: allowed) != nil
            else { throw SnapshotError(.unsafeEntry, "refused \(name): hardlink to \(link) escapes the persisted paths") }
            return parts
        }
        let type = archive_entry_filetype(entry)
        switch type {
        case flare_ae_ifreg(), flare_ae_ifdir():
            return parts
        case flare_ae_iflnk():
            let target = archive_entry_symlink(entry).map { String(cString: $0) } ?? ""
            guard !target.isEmpty,
                  target.hasPrefix("/") || SnapshotPaths.staysInside(linkAt: parts, target: target, persisted: persisted)
            else { throw SnapshotError(.unsafeEntry, "refused \(name): symlink to \(target) escapes its persisted path") }
            return parts
        default:
            throw SnapshotError(.unsafeEntry, "refused \(name): device nodes, FIFOs and sockets are not restored")
        }
    }

    private func copyData(of name: String, from reader: OpaquePointer, to writer: OpaquePointer) throws {
        var block: UnsafeRawPointer?
        var size = 0
        var offset: Int64 = 0
        while true {
            let rc = archive_read_data_block(reader, &block, &size, &offset)
            if rc == ARCHIVE_EOF { return }
            guard rc == ARCHIVE_OK || rc == ARCHIVE_WARN else {
                throw SnapshotError(.corrupt, "the snapshot is damaged at \(name): \(archiveError(reader, "read failed"))")
            }
            guard archive_write_data_block(writer, block, size, offset) >= 0 else {
                throw SnapshotError(.io, "cannot restore \(name): \(archiveError(writer, "write failed"))")
            }
        }
    }
}
