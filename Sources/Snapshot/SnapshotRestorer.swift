import CLibArchive
import Foundation

/// What a restore put back.
public struct RestoreReport: Sendable, Equatable {
    public var entryCount: Int
    public var totalBytes: UInt64

    public init(entryCount: Int, totalBytes: UInt64) {
        self.entryCount = entryCount
        self.totalBytes = totalBytes
    }
}

/// Restores a snapshot into a session's persisted paths, and nowhere else.
///
/// Every entry is checked before it is written: no absolute or `..` names, nothing outside the
/// persisted paths, no device nodes, FIFOs or sockets, no relative symlink that climbs out of its
/// persisted path, no hardlink to outside; setuid and setgid bits are dropped; the declared sizes
/// and the entry count are bounded.
///
/// Three steps, so a root agent never writes by path where the session's user can change the tree:
/// 1. ``stage(persistedPaths:root:owner:)`` opens (or makes) each persisted path without following
///    a link and makes a staging directory inside it;
/// 2. ``extract(archiveDescriptor:root:persistedPaths:staging:)`` writes the archive into the
///    staging directories; a root agent runs this step as the user (`flare-agent snapshot restore
///    --staged`), so a user racing it gains nothing;
/// 3. ``commit(_:)`` swaps the staged content in through the descriptors of step 1 only once the
///    whole archive was read cleanly, so a bad or truncated archive changes nothing.
/// Nothing is renamed across directories, so it works on overlayfs (a container's image layers).
/// Blocking: run it on a thread of its own.
public struct SnapshotRestorer: Sendable {
    public var limits = RestoreLimits()

    public init() {}

    /// Whose the persisted paths are when a privileged agent restores for the session's user.
    public struct Owner: Sendable, Equatable {
        public var uid: uid_t
        public var gid: gid_t

        public init(uid: uid_t, gid: gid_t) {
            self.uid = uid
            self.gid = gid
        }
    }

    /// The staging directories of one restore, held open by descriptor with their persisted paths.
    public final class Staging {
        /// The staging directory's name inside each persisted path.
        public let tag: String
        fileprivate var paths: [(name: String, live: Int32, staged: Int32)] = []

        fileprivate init(tag: String) {
            self.tag = tag
        }

        deinit { paths.forEach { close($0.live); close($0.staged) } }
    }

    /// Replaces each of `persistedPaths` under `root` with the snapshot's content (an empty
    /// directory where the snapshot has none), in this process: for an agent that is the user.
    public func restore(archive path: String, root: String, persistedPaths: [String]) throws -> RestoreReport {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw SnapshotError(.corrupt, "cannot open snapshot \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        let staging = try Self.stage(persistedPaths: persistedPaths, root: root)
        do {
            let report = try extract(archiveDescriptor: descriptor, root: root, persistedPaths: persistedPaths,
                                     staging: staging.tag)
            try Self.commit(staging)
            return report
        } catch {
            Self.discard(staging)
            throw error
        }
    }

    /// Step 1: opens each persisted path from `root` one component at a time, never following a
    /// link, making what is missing (a link or file where the persisted path itself should be is
    /// replaced), and makes an empty staging directory inside it. With an `owner`, the persisted
    /// paths and the staging directories become theirs.
    public static func stage(persistedPaths: [String], root: String, owner: Owner? = nil) throws -> Staging {
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let staging = Staging(tag: ".flare-restore-\(UInt32.random(in: .min ... .max))")
        for persisted in SnapshotPaths.topLevel(persistedPaths) {
            guard let parts = SnapshotPaths.components(ofEntry: SnapshotPaths.relative(persisted)) else { continue }
            var directory = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard directory >= 0 else { throw ioError("cannot open \(root)") }
            for (index, part) in parts.enumerated() {
                let name = String(part), isLast = index == parts.count - 1
                var parent = stat()
                guard fstat(directory, &parent) == 0 else { throw ioError("cannot restore into \(persisted)") }
                var next = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                var failure = next < 0 ? errno : 0
                if failure == ELOOP || failure == ENOTDIR, isLast, unlinkat(directory, name, 0) == 0 {
                    failure = ENOENT  // a link or a file where the persisted path should be
                }
                var made = false
                if failure == ENOENT {
                    made = mkdirat(directory, name, 0o700) == 0
                    next = openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    failure = next < 0 ? errno : 0
                }
                close(directory)
                guard next >= 0 else {
                    throw SnapshotError(.io, "cannot restore into \(persisted): /\(parts[...index].joined(separator: "/")) "
                        + "is not a directory we can open (\(String(cString: strerror(failure))))")
                }
                directory = next
                // Changed only through the descriptor: what was made is first checked to be the
                // empty directory made (the name may have been swapped meanwhile), and an existing
                // persisted path is handed over only from a parent the user cannot change.
                if made {
                    do { try requireFresh(directory, persisted) } catch { close(directory); throw error }
                    _ = fchmod(directory, 0o755)
                    if let owner, isLast || parent.st_uid == owner.uid { _ = fchown(directory, owner.uid, owner.gid) }
                } else if isLast, let owner, parent.st_uid == 0, parent.st_mode & 0o022 == 0 {
                    _ = fchown(directory, owner.uid, owner.gid)
                }
            }
            guard mkdirat(directory, staging.tag, 0o700) == 0 else {
                let error = ioError("cannot restore into \(persisted)")
                close(directory)
                throw error
            }
            let staged = openat(directory, staging.tag, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard staged >= 0 else {
                let error = ioError("cannot restore into \(persisted)")
                close(directory)
                throw error
            }
            do {
                try requireFresh(staged, persisted)
            } catch {
                close(staged)
                close(directory)
                throw error
            }
            if let owner { _ = fchown(staged, owner.uid, owner.gid) }
            staging.paths.append((persisted, directory, staged))
        }
        return staging
    }

    /// Throws unless `directory` is an empty directory of this process's uid: what mkdirat made,
    /// not something swapped in under its name.
    private static func requireFresh(_ directory: Int32, _ persisted: String) throws {
        var info = stat()
        guard fstat(directory, &info) == 0, info.st_uid == geteuid(), try names(in: directory).isEmpty else {
            throw SnapshotError(.io, "cannot restore into \(persisted): a directory it made was replaced meanwhile")
        }
    }

    /// Step 2: writes the archive read from `descriptor` into the staging directories named `tag`
    /// that step 1 made inside each persisted path under `root`.
    public func extract(archiveDescriptor descriptor: Int32, root: String, persistedPaths: [String],
                        staging tag: String) throws -> RestoreReport
    {
        guard let realRoot = realpath(root, nil) else { throw Self.ioError("cannot restore into \(root)") }
        let base = String(cString: realRoot) == "/" ? "" : String(cString: realRoot)
        free(realRoot)
        let allowed = SnapshotPaths.topLevel(persistedPaths)
            .compactMap { SnapshotPaths.components(ofEntry: SnapshotPaths.relative($0)) }
        var staging: [[Substring]: String] = [:]
        for parts in allowed {
            let directory = base + "/" + parts.joined(separator: "/") + "/" + tag
            var info = stat()
            guard lstat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
                throw SnapshotError(.io, "no staging directory at \(directory) (replaced while restoring?)")
            }
            staging[parts] = directory
        }
        return try extract(descriptor, allowed: allowed) { parts in
            let persisted = SnapshotPaths.owner(of: parts, in: allowed)!
            return ([staging[persisted]!] + parts.dropFirst(persisted.count).map(String.init)).joined(separator: "/")
        }
    }

    /// Step 3: empties each persisted path but for its staging directory and moves the staged
    /// entries in, then gives it the staged directory's mode and times (and owner, as root). Only
    /// through the descriptors of step 1: no path is resolved, no link followed, no other
    /// filesystem entered.
    public static func commit(_ staging: Staging) throws {
        // The extraction wrote by path: what it filled must be the directories held here, all of
        // them, before anything changes.
        for path in staging.paths {
            var held = stat(), there = stat()
            guard fstat(path.staged, &held) == 0, fstatat(path.live, staging.tag, &there, AT_SYMLINK_NOFOLLOW) == 0,
                  there.st_ino == held.st_ino, there.st_dev == held.st_dev
            else { throw SnapshotError(.io, "cannot restore \(path.name): its staging directory was replaced meanwhile") }
        }
        for path in staging.paths {
            var info = stat()
            guard fstat(path.live, &info) == 0 else { throw ioError("cannot restore \(path.name)") }
            try removeContents(of: path.live, except: staging.tag, device: info.st_dev, in: path.name)
            for name in try names(in: path.staged) {
                var moved = renameat(path.staged, name, path.live, name) == 0
                if !moved, errno == EEXIST || errno == ENOTEMPTY || errno == EISDIR || errno == ENOTDIR {
                    // Something appeared under that name meanwhile (a live session): the snapshot wins.
                    try removeEntry(name, in: path.live, device: info.st_dev, at: path.name)
                    moved = renameat(path.staged, name, path.live, name) == 0
                }
                guard moved else { throw ioError("cannot move the restored \(name) into \(path.name)") }
            }
            var staged = stat()
            guard fstat(path.staged, &staged) == 0 else { continue }
            if geteuid() == 0 { _ = fchown(path.live, staged.st_uid, staged.st_gid) }
            _ = fchmod(path.live, staged.st_mode & 0o1777)
            var times = [staged.st_atim, staged.st_mtim]
            _ = futimens(path.live, &times)
            _ = unlinkat(path.live, staging.tag, AT_REMOVEDIR)
        }
    }

    /// Removes the staging directories of a restore that did not go through; the persisted paths
    /// stay as they were.
    public static func discard(_ staging: Staging) {
        for path in staging.paths {
            var info = stat()
            guard fstat(path.live, &info) == 0 else { continue }
            try? removeEntry(staging.tag, in: path.live, device: info.st_dev, at: path.name)
        }
    }

    /// Removes every entry of `directory` but `keep`, depth first, through descriptors.
    private static func removeContents(of directory: Int32, except keep: String?, device: dev_t, in name: String) throws {
        for entry in try names(in: directory) where entry != keep {
            try removeEntry(entry, in: directory, device: device, at: name)
        }
    }

    /// Removes `entry` of `directory`, a whole tree if it is a directory, without following links
    /// and without entering another filesystem. Tries again if the entry changes type meanwhile.
    private static func removeEntry(_ entry: String, in directory: Int32, device: dev_t, at name: String) throws {
        for _ in 0 ..< 4 {
            if unlinkat(directory, entry, 0) == 0 || errno == ENOENT { return }
            guard errno == EISDIR || errno == EPERM else { break }
            let child = openat(directory, entry, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if child < 0 { continue }
            var info = stat()
            guard fstat(child, &info) == 0, info.st_dev == device else {
                close(child)
                throw SnapshotError(.io, "cannot restore \(name): \(entry) is on another filesystem")
            }
            do {
                try removeContents(of: child, except: nil, device: device, in: name + "/" + entry)
            } catch {
                close(child)
                throw error
            }
            close(child)
            if unlinkat(directory, entry, AT_REMOVEDIR) == 0 || errno == ENOENT { return }
        }
        throw ioError("cannot remove \(entry) from \(name)")
    }

    /// The names in a directory (not `.` and `..`), read through a duplicate of its descriptor.
    private static func names(in directory: Int32) throws -> [String] {
        let copy = openat(directory, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard copy >= 0, let stream = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            throw ioError("cannot list a persisted directory")
        }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    private static func ioError(_ message: String) -> SnapshotError {
        SnapshotError(.io, "\(message): \(String(cString: strerror(errno)))")
    }

    private func extract(_ descriptor: Int32, allowed: [[Substring]], destination: ([Substring]) -> String) throws
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
        // Owners are restored only by root (a template bundle); a user's restore makes them the user's.
        archive_write_disk_set_options(writer, flare_extract_flags(geteuid() == 0 ? 1 : 0))
        archive_write_disk_set_standard_lookup(writer)
        guard archive_read_open_fd(reader, descriptor, 1 << 16) == ARCHIVE_OK else {
            throw SnapshotError(.corrupt, "cannot read the snapshot: \(archiveError(reader, "unreadable"))")
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
            archive_entry_set_pathname(entry, destination(parts))
            if let link = archive_entry_hardlink(entry).map({ String(cString: $0) }) {
                archive_entry_set_hardlink(entry, destination(SnapshotPaths.components(ofEntry: link)!))
            }
            archive_entry_set_perm(entry, archive_entry_perm(entry) & ~mode_t(0o6000))  // no setuid or setgid
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
        // A persisted path is a directory: a link or file in its place would replace the staging
        // directory the restore holds.
        if parts.count == persisted.count,
           archive_entry_hardlink(entry) != nil || archive_entry_filetype(entry) != flare_ae_ifdir() {
            throw SnapshotError(.unsafeEntry, "refused \(name): a persisted path must be a directory")
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
