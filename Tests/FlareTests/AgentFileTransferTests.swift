import Foundation
import Testing

/// OpenSSH's file tools against the agent: sftp, scp (sftp mode and legacy -O), rsync. The sftp
/// tests run against the system's sftp-server and against the agent's built-in one.
@Suite(.serialized) struct AgentFileTransferTests {
    func randomFile(_ path: String, size: Int) async throws -> String {
        let made = try await TestProcess.run(["sh", "-c", "head -c \(size) /dev/urandom > '\(path)'"])
        guard made.status == 0 else { throw FixtureError("could not make \(path)") }
        return try await sha(path)
    }

    func sha(_ path: String) async throws -> String {
        try await TestProcess.run(["sha256sum", path]).stdout.prefix(64).description
    }

    @Test(arguments: ["auto", "internal"])
    func sftpBatchPutGetRenameRemove(server: String) async throws {
        let fixture = try await AgentFixture(arguments: ["--sftp", server])
        let local = fixture.directory.path("upload.bin")
        let digest = try await randomFile(local, size: 100_000_000)
        let back = fixture.directory.path("download.bin")
        let batch = fixture.directory.path("batch")
        try """
            mkdir incoming
            put \(local) incoming/a.bin
            !sha256sum \(fixture.directory.path("root"))/home/flare/incoming/a.bin > \(fixture.directory.path("remote.sha"))
            rename incoming/a.bin incoming/b.bin
            ls -l incoming
            chmod 600 incoming/b.bin
            ln -s b.bin incoming/link
            get incoming/link \(back)
            rm incoming/link
            rm incoming/b.bin
            rmdir incoming
            """.write(toFile: batch, atomically: true, encoding: .utf8)
        var ssh = try fixture.ssh()
        ssh.removeFirst()
        let host = ssh.removeLast()
        let portIndex = try #require(ssh.firstIndex(of: "-p"))
        ssh[portIndex] = "-P"
        let result = try await TestProcess.run(["sftp", "-b", batch] + ssh + [host])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("b.bin"))
        #expect(result.stdout.contains("-rw-r--r--"))
        #expect(try await sha(back) == digest)
        let remote = try String(contentsOfFile: fixture.directory.path("remote.sha"), encoding: .utf8)
        #expect(remote.prefix(64) == digest)
        let home = fixture.directory.path("root") + "/home/flare"
        #expect(!FileManager.default.fileExists(atPath: home + "/incoming"))
    }

    @Test(arguments: ["auto", "internal"])
    func scpBothWaysInSftpAndLegacyMode(server: String) async throws {
        let fixture = try await AgentFixture(arguments: ["--sftp", server])
        let local = fixture.directory.path("file.bin")
        let digest = try await randomFile(local, size: 3_000_000)
        var options = try fixture.ssh()
        options.removeFirst()
        let host = options.removeLast()
        let portIndex = try #require(options.firstIndex(of: "-p"))
        options[portIndex] = "-P"
        let home = fixture.directory.path("root") + "/home/flare"
        for mode in [[], ["-O"]] {
            let name = mode.isEmpty ? "sftp-mode.bin" : "legacy.bin"
            let up = try await TestProcess.run(["scp"] + mode + options + [local, "\(host):\(name)"])
            #expect(up.status == 0, "scp \(mode) up: \(up.stderr)")
            #expect(try await sha(home + "/" + name) == digest)
            let back = fixture.directory.path("back-" + name)
            let down = try await TestProcess.run(["scp"] + mode + options + ["\(host):\(name)", back])
            #expect(down.status == 0, "scp \(mode) down: \(down.stderr)")
            #expect(try await sha(back) == digest)
        }
    }

    @Test func rsyncTreeThenIncrementalRunSendsAlmostNothing() async throws {
        let fixture = try await AgentFixture()
        let tree = fixture.directory.path("tree")
        for index in 0..<30 {
            let dir = tree + "/d\(index % 5)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            _ = try await randomFile(dir + "/f\(index).bin", size: 40_000)
        }
        let ssh = try fixture.ssh().dropLast().map { "'\($0)'" }.joined(separator: " ")
        let host = try fixture.ssh().last!
        let first = try await TestProcess.run(["rsync", "-a", "--stats", "-e", ssh, tree + "/", "\(host):tree/"])
        #expect(first.status == 0, "\(first.stderr)")
        let home = fixture.directory.path("root") + "/home/flare"
        let diff = try await TestProcess.run(["diff", "-r", tree, home + "/tree"])
        #expect(diff.status == 0, "\(diff.stdout)")
        let second = try await TestProcess.run(["rsync", "-a", "--stats", "-e", ssh, tree + "/", "\(host):tree/"])
        #expect(second.status == 0)
        #expect(second.stdout.contains("Number of regular files transferred: 0"))
    }
}
