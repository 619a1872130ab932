import ArgumentParser
import Foundation
import Snapshot

extension FlareAgent {
    struct SnapshotCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "snapshot",
            abstract: "Create or restore a snapshot of persisted paths (tar + zstd).",
            subcommands: [Create.self, Restore.self])
    }
}

/// The session filesystem and the persisted paths, shared by create and restore.
struct PersistedPathOptions: ParsableArguments {
    @Option(help: "Directory standing in for the session's filesystem root.")
    var root: String = "/"
    @Option(name: .customLong("path"), help: "A persisted path, absolute as the session sees it (repeatable).")
    var paths: [String]

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one --path") }
        for path in paths where !path.hasPrefix("/") || path == "/" {
            throw ValidationError("--path \(path) must be absolute and not /")
        }
    }
}

extension FlareAgent.SnapshotCommand {
    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Snapshot persisted paths into a file; prints the manifest as JSON.",
            discussion: "Example: flare-agent snapshot create --root /srv/s1 --path /home/flare --output home.tar.zst")
        @OptionGroup var paths: PersistedPathOptions
        @Option(help: "Archive to write.")
        var output: String?
        @Option(help: ArgumentHelp("Write the archive to this open descriptor instead.", visibility: .private))
        var outputFd: Int32?
        @Option(help: "zstd compression level (1-19).")
        var level: Int = 3
        @Option(help: "zstd worker threads (0: compress on the calling thread).")
        var threads: Int = 2

        func validate() throws {
            guard (output == nil) != (outputFd == nil) else { throw ValidationError("give --output") }
        }

        func run() throws {
            var writer = SnapshotWriter()
            writer.compressionLevel = level
            writer.threads = threads
            let manifest: SnapshotManifest
            do {
                if let outputFd {
                    manifest = try writer.create(root: paths.root, persistedPaths: paths.paths, outputDescriptor: outputFd)
                } else {
                    manifest = try writer.create(root: paths.root, persistedPaths: paths.paths, output: output!)
                }
            } catch let error as SnapshotError {
                FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
                throw ExitCode(2)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(manifest), as: UTF8.self))
        }
    }

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a snapshot into persisted paths; a bad archive changes nothing.",
            discussion: "Example: flare-agent snapshot restore --root /srv/s1 --path /home/flare --input home.tar.zst")
        @OptionGroup var paths: PersistedPathOptions
        @Option(help: "Archive to read (- for standard input).")
        var input: String
        @Option(help: "Largest total size accepted, in bytes.")
        var maxBytes: UInt64 = RestoreLimits().maxTotalBytes
        @Option(help: "Most entries accepted.")
        var maxEntries: Int = RestoreLimits().maxEntries
        @Option(help: ArgumentHelp("Only write into the staging directories of this name a root agent made.",
                                   visibility: .private))
        var staged: String?

        func run() throws {
            var restorer = SnapshotRestorer()
            restorer.limits = RestoreLimits(maxTotalBytes: maxBytes, maxEntries: maxEntries)
            do {
                let report: RestoreReport
                if let staged {
                    let descriptor = input == "-" ? 0 : open(input, O_RDONLY | O_CLOEXEC)
                    report = try restorer.extract(archiveDescriptor: descriptor, root: paths.root,
                                                  persistedPaths: paths.paths, staging: staged)
                } else {
                    report = try restorer.restore(archive: input == "-" ? "/dev/stdin" : input, root: paths.root,
                                                  persistedPaths: paths.paths)
                }
                print("restored \(report.entryCount) entries, \(report.totalBytes) bytes")
            } catch let error as SnapshotError {
                FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}
