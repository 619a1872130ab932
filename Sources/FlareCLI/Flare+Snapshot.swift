import ArgumentParser
import AsyncHTTPClient
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct Snapshot: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, download and delete a session's snapshots.",
            subcommands: [Save.self, List.self, Restore.self, Download.self, Delete.self])
    }
}

extension Flare.Snapshot {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List a session's snapshots, newest first.", discussion: "Example: flare snapshot list dev")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Session name or id.")
        var session: String

        func run() async throws {
            let snapshots = try await global.authenticatedClient().call(Endpoints.Snapshots.list.at(session))
            if output.json { return try printJSON(snapshots) }
            printTable(["ID", "CREATED", "FILES", "SIZE", "ARCHIVE", "REASON"], snapshots.map {
                [$0.id + ($0.latest == true ? " (latest)" : ""), relative($0.createdAt), String($0.entryCount),
                 byteCount(UInt64($0.totalBytes)), byteCount(UInt64($0.archiveBytes)), $0.reason]
            })
        }
    }

    struct Download: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Download a snapshot archive (tar + zstd); checks its sha256.",
            discussion: "Example: flare snapshot download dev --output dev.tar.zst   (then: tar --zstd -tf dev.tar.zst)")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String
        @Argument(help: "Snapshot id (default: the latest).")
        var snapshot: String = "latest"
        @Option(help: "File to write.")
        var output: String

        func run() async throws {
            let client = try await global.authenticatedClient()
            let snapshots = try await client.call(Endpoints.Snapshots.list.at(session))
            guard let info = snapshots.first(where: { snapshot == "latest" ? $0.latest == true : $0.id == snapshot })
            else { throw CLIError("session \(session) has no snapshot \(snapshot)") }
            try await download(info, client: client)
            print("Saved \(info.id) (\(byteCount(UInt64(info.archiveBytes)))) to \(output).")
        }

        private func download(_ info: SnapshotInfo, client: FlareClient) async throws {
            let response = try await client.open(Endpoints.Snapshots.content.at(session, info.id), timeout: .seconds(3600))
            let partial = output + ".part"
            guard FileManager.default.createFile(atPath: partial, contents: nil),
                  let handle = FileHandle(forWritingAtPath: partial)
            else { throw CLIError("cannot write \(output)") }
            var hasher = SHA256Stream()
            var received: Int64 = 0
            let interactive = isatty(2) == 1
            for try await buffer in response.body {
                let data = Data(buffer: buffer)
                hasher.update(data)
                try handle.write(contentsOf: data)
                received += Int64(data.count)
                if interactive {
                    let percent = info.archiveBytes > 0 ? received * 100 / info.archiveBytes : 100
                    FileHandle.standardError.write(Data("\rdownloading \(info.id)… \(percent)%".utf8))
                }
            }
            try handle.close()
            if interactive { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            guard hasher.hex == info.sha256 else {
                unlink(partial)
                throw CLIError("the download of \(info.id) does not match its sha256; nothing was written")
            }
            guard rename(partial, output) == 0 else { throw CLIError("cannot write \(output)") }
        }
    }

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Snapshot a running session's persisted paths now.", discussion: "Example: flare snapshot save dev")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Session name or id.")
        var session: String

        func run() async throws {
            printStatus("saving a snapshot of \(session)…")
            let info = try await global.authenticatedClient().call(Endpoints.Snapshots.save.at(session))
            if output.json { return try printJSON(info) }
            print("Saved \(info.id): \(info.entryCount) entries, \(byteCount(UInt64(info.totalBytes))) "
                + "(\(byteCount(UInt64(info.archiveBytes))) compressed).")
        }
    }

    struct Restore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Restore a snapshot: live into a running session, or on its next wake.",
            discussion: "Example: flare snapshot restore dev snp_1a2b")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String
        @Argument(help: "Snapshot id.")
        var snapshot: String

        func run() async throws {
            let client = try await global.authenticatedClient()
            let before = try await client.call(Endpoints.Sessions.get.at(session))
            try await client.call(Endpoints.Snapshots.restore.at(session, snapshot))
            print(before.state == .running
                ? "Restored \(snapshot) into \(before.name)."
                : "\(before.name) is \(before.state.rawValue); \(snapshot) will be restored when it wakes.")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a snapshot (not the latest one).", discussion: "Example: flare snapshot delete dev snp_1a2b")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String
        @Argument(help: "Snapshot id.")
        var snapshot: String

        func run() async throws {
            try await global.authenticatedClient().call(Endpoints.Snapshots.delete.at(session, snapshot))
            print("Deleted snapshot \(snapshot).")
        }
    }
}
