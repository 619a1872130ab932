import Foundation
import Snapshot
import Testing

/// Snapshots: what a round trip keeps, interop with GNU tar, and archives that must change nothing.
@Suite struct SnapshotTests {
    /// A session root with a persisted path holding every kind of entry, and a file outside it.
    func makeTree() async throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        let script = """
            set -e
            mkdir -p root/home/flare/work/empty root/home/flare/work/deep/er
            head -c 3000000 /dev/urandom > root/home/flare/work/random.bin
            yes compressible | head -c 2000000 > root/home/flare/work/deep/er/text.txt
            echo secret > root/home/flare/work/private && chmod 600 root/home/flare/work/private
            ln root/home/flare/work/private root/home/flare/work/private-hardlink
            ln -s deep/er/text.txt root/home/flare/work/text-link
            truncate -s 50M root/home/flare/work/sparse.img
            echo not-persisted > root/home/flare/outside.txt
            touch -d '2021-02-03 04:05:06' root/home/flare/work/random.bin
            """
        let made = try await TestProcess.run(["sh", "-c", "cd '\(directory.url.path)' && \(script)"])
        guard made.status == 0 else { throw FixtureError("tree: \(made.stderr)") }
        return directory
    }

    /// `find`-style listing with type, mode, size, link count and target: what a user would compare.
    func listing(_ path: String) async throws -> String {
        try await TestProcess.run(["sh", "-c", "cd '\(path)' && find . -printf '%y %m %s %n %l %p\\n' | sort"]).stdout
    }

    func digest(_ path: String) async throws -> String {
        try await TestProcess.run(["sh", "-c", "cd '\(path)' && find . -type f -print0 | sort -z | xargs -0 sha256sum"]).stdout
    }

    @Test func roundTripKeepsContentAndMetadata() async throws {
        let tree = try await makeTree()
        let archive = tree.path("snap.tar.zst")
        let manifest = try SnapshotWriter().create(root: tree.path("root"), persistedPaths: ["/home/flare/work"],
                                                   output: archive)
        #expect(manifest.entryCount == 10)
        #expect(manifest.changedDuringSnapshot.isEmpty)
        let fileDigest = try await TestProcess.run(["sha256sum", archive]).stdout.prefix(64)
        #expect(manifest.sha256 == fileDigest)

        let report = try SnapshotRestorer().restore(archive: archive, root: tree.path("restored"),
                                                    persistedPaths: ["/home/flare/work"])
        #expect(report.entryCount == 10)
        let original = tree.path("root/home/flare/work"), restored = tree.path("restored/home/flare/work")
        #expect(try await listing(restored) == listing(original))
        #expect(try await digest(restored) == digest(original))
        let mtime = try await TestProcess.run(["stat", "-c", "%Y", restored + "/random.bin"]).stdout
        #expect(mtime == (try await TestProcess.run(["stat", "-c", "%Y", original + "/random.bin"]).stdout))
        // Sparse stays sparse; outside the persisted path nothing comes back.
        let blocks = try await TestProcess.run(["stat", "-c", "%b", restored + "/sparse.img"]).stdout
        #expect(Int(blocks.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 1 < 100)
        #expect(!FileManager.default.fileExists(atPath: tree.path("restored/home/flare/outside.txt")))
    }

    @Test func restoreReplacesWhatWasThere() async throws {
        let tree = try await makeTree()
        let archive = tree.path("snap.tar.zst")
        _ = try SnapshotWriter().create(root: tree.path("root"), persistedPaths: ["/home/flare/work"], output: archive)
        try FileManager.default.createDirectory(atPath: tree.path("dest/home/flare/work"),
                                                withIntermediateDirectories: true)
        try "stale".write(toFile: tree.path("dest/home/flare/work/stale.txt"), atomically: true, encoding: .utf8)
        _ = try SnapshotRestorer().restore(archive: archive, root: tree.path("dest"), persistedPaths: ["/home/flare/work"])
        #expect(!FileManager.default.fileExists(atPath: tree.path("dest/home/flare/work/stale.txt")))
        #expect(try await digest(tree.path("dest/home/flare/work")) == digest(tree.path("root/home/flare/work")))
        // No staging directory is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: tree.path("dest")) == ["home"])
    }

    @Test func gnuTarReadsOursAndWeRestoreGNUTars() async throws {
        let tree = try await makeTree()
        let ours = tree.path("ours.tar.zst")
        _ = try SnapshotWriter().create(root: tree.path("root"), persistedPaths: ["/home/flare/work"], output: ours)
        let extracted = try await TestProcess.run(["sh", "-c",
            "mkdir -p '\(tree.path("by-tar"))' && tar --zstd -xf '\(ours)' -C '\(tree.path("by-tar"))'"])
        #expect(extracted.status == 0, "\(extracted.stderr)")
        #expect(try await digest(tree.path("by-tar/home/flare/work")) == digest(tree.path("root/home/flare/work")))

        let theirs = tree.path("theirs.tar.zst")
        let created = try await TestProcess.run(["tar", "--zstd", "-cf", theirs, "-C", tree.path("root"), "home/flare/work"])
        #expect(created.status == 0)
        _ = try SnapshotRestorer().restore(archive: theirs, root: tree.path("from-tar"), persistedPaths: ["/home/flare/work"])
        #expect(try await listing(tree.path("from-tar/home/flare/work")) == listing(tree.path("root/home/flare/work")))
    }

    /// Archives a restore must refuse, leaving the live tree exactly as it was.
    static let hostile: [(name: String, python: String)] = [
        ("traversal", "add_file(t, 'home/flare/work/../../../../etc/evil', b'x')"),
        ("absolute path", "add_file(t, '/etc/evil', b'x')"),
        ("outside the persisted path", "add_file(t, 'home/other/evil', b'x')"),
        ("escaping symlink", "add_link(t, 'home/flare/work/up', '../../../../etc')"),
        ("hardlink to outside", "add_hardlink(t, 'home/flare/work/h', 'etc/passwd')"),
        ("persisted path itself a link", "add_link(t, 'home/flare/work', '/tmp'); add_file(t, 'home/flare/work/through', b'x')"),
        ("device node", "add_special(t, 'home/flare/work/dev', tarfile.CHRTYPE)"),
        ("fifo", "add_special(t, 'home/flare/work/fifo', tarfile.FIFOTYPE)"),
        ("too many entries", "[add_file(t, 'home/flare/work/f%d' % i, b'') for i in range(30000)]"),
        ("size bomb", "add_huge(t, 'home/flare/work/bomb', 10 * 1024**3)"),
    ]

    @Test(arguments: hostile.map(\.name))
    func hostileArchiveChangesNothing(_ name: String) async throws {
        let tree = try await makeTree()
        let python = Self.hostile.first { $0.name == name }!.python
        let archive = tree.path("evil.tar")
        let generator = """
            import io, tarfile
            def add_file(t, n, data):
                i = tarfile.TarInfo(n); i.size = len(data); t.addfile(i, io.BytesIO(data))
            def add_link(t, n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.SYMTYPE; i.linkname = target; t.addfile(i)
            def add_hardlink(t, n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.LNKTYPE; i.linkname = target; t.addfile(i)
            def add_special(t, n, kind):
                i = tarfile.TarInfo(n); i.type = kind; i.devmajor = 1; i.devminor = 3; t.addfile(i)
            def add_huge(t, n, size):
                i = tarfile.TarInfo(n); i.size = size; t.fileobj.write(i.tobuf(tarfile.PAX_FORMAT)); t.fileobj.write(b'\\0' * 1024 * 1024)
            with tarfile.open('\(archive)', 'w', format=tarfile.PAX_FORMAT) as t:
                add_file(t, 'home/flare/work/ok.txt', b'fine')
                \(python)
            """
        let made = try await TestProcess.run(["python3", "-c", generator])
        #expect(made.status == 0, "\(made.stderr)")
        let before = try await listing(tree.path("root"))
        var restorer = SnapshotRestorer()
        restorer.limits = RestoreLimits(maxTotalBytes: 1 << 30, maxEntries: 20_000)
        let expected: SnapshotError = ["too many entries", "size bomb"].contains(name) ? .limitExceeded : .unsafeEntry
        #expect(throws: expected) {
            try restorer.restore(archive: archive, root: tree.path("root"), persistedPaths: ["/home/flare/work"])
        }
        #expect(try await listing(tree.path("root")) == before)
        #expect(!FileManager.default.fileExists(atPath: "/etc/evil"))
    }

    @Test func truncatedOrCorruptArchiveChangesNothing() async throws {
        let tree = try await makeTree()
        let archive = tree.path("snap.tar.zst")
        _ = try SnapshotWriter().create(root: tree.path("root"), persistedPaths: ["/home/flare/work"], output: archive)
        let size = try FileManager.default.attributesOfItem(atPath: archive)[.size] as! Int
        let before = try await listing(tree.path("root"))
        try FileHandle(forWritingTo: URL(fileURLWithPath: archive)).truncate(atOffset: UInt64(size / 2))
        #expect(throws: SnapshotError.corrupt) {
            try SnapshotRestorer().restore(archive: archive, root: tree.path("root"), persistedPaths: ["/home/flare/work"])
        }
        try Data(repeating: 0x5a, count: 4096).write(to: URL(fileURLWithPath: archive))
        #expect(throws: SnapshotError.corrupt) {
            try SnapshotRestorer().restore(archive: archive, root: tree.path("root"), persistedPaths: ["/home/flare/work"])
        }
        #expect(try await listing(tree.path("root")) == before)
    }
}
