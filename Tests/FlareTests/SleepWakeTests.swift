import FlareContracts
import FlareSystem
import Foundation
import Testing

/// Stop = final snapshot + the session's filesystem discarded; start = restore before `running`.
@Suite(.serialized) struct SleepWakeTests {
    static let manifest = #"{"image":"burstflare/session-base","persistedPaths":["/home/flare/work"]}"#
    static let inventory = "cd work && find . -printf '%y %m %s %n %l %p\\n' | sort && sha256sum big a secret"

    func startWithWork(_ fixture: ServerFixture) async throws -> String {
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        let write = try await fixture.flare(["ssh", "dev", "--", """
            cd work && head -c 200000000 /dev/urandom > big && echo hi > a && ln a a-hard && ln -s a a-sym \
            && mkdir empty && echo s > secret && chmod 600 secret && echo gone > ../outside.txt
            """])
        #expect(write.status == 0, "\(write.stderr)")
        let before = try await fixture.flare(["ssh", "dev", "--", Self.inventory])
        #expect(before.status == 0)
        return before.stdout
    }

    /// Under both runtimes: a process tree on this machine, and containers (a new one after the wake).
    @Test(arguments: ["host", "docker"])
    func stopThenStartBringsBackExactlyThePersistedPaths(runtime: String) async throws {
        let fixture = try await ServerFixture(runtime: runtime)
        let before = try await startWithWork(fixture)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        // Asleep, the session holds no local disk.
        let sessions = fixture.directory.path("data/sessions")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: sessions)) ?? []).isEmpty)
        let containers = try await TestProcess.run(["docker", "ps", "-q", "--filter", "name=flare-\(try await fixture.sessionId())"])
        #expect(containers.stdout.isEmpty)

        #expect(try await fixture.flare(["session", "start", "dev"]).status == 0)
        let after = try await fixture.flare(["ssh", "dev", "--", Self.inventory])
        #expect(after.stdout == before)
        #expect(try await fixture.flare(["ssh", "dev", "--", "test -e outside.txt && echo present || echo absent"])
            .stdout == "absent\n")
        let events = try await fixture.flare(["session", "events", "dev", "--json"])
        let states = try FlareJSON.decoder().decode([SessionEvent].self, from: Data(events.stdout.utf8)).map(\.toState)
        #expect(states == [.created, .starting, .running, .stopping, .sleeping, .starting, .running])

        // The snapshot is listed, downloadable (and readable by GNU tar), and the latest cannot be deleted.
        let listed = try await fixture.flare(["snapshot", "list", "dev", "--json"])
        let snapshots = try FlareJSON.decoder().decode([SnapshotInfo].self, from: Data(listed.stdout.utf8))
        #expect(snapshots.count == 1)
        #expect(snapshots.first?.latest == true)
        let file = fixture.directory.path("dev.tar.zst")
        #expect(try await fixture.flare(["snapshot", "download", "dev", "--output", file]).status == 0)
        let entries = try await TestProcess.run(["tar", "--zstd", "-tf", file]).stdout
        #expect(entries.contains("home/flare/work/big"))
        #expect(!entries.contains("outside.txt"))
        let refused = try await fixture.flare(["snapshot", "delete", "dev", snapshots[0].id])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("latest snapshot"))
    }

    @Test func idleSessionSleepsByItselfAndSshWakesIt() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate(manifest: #"{"image":"x","persistedPaths":["/home/flare"],"idleTimeoutSeconds":2}"#)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo kept > note"]).status == 0)
        let slept = await waitFor(timeout: 20) {
            (try? await fixture.flare(["session", "get", "dev", "--json"]).stdout.contains("\"state\" : \"sleeping\"")) == true
        }
        #expect(slept)
        let events = try await fixture.flare(["session", "events", "dev", "--json"])
        let stopping = try FlareJSON.decoder().decode([SessionEvent].self, from: Data(events.stdout.utf8))
            .first { $0.toState == .stopping }
        #expect(stopping?.reason.contains("idle for") == true, "\(String(describing: stopping))")
        #expect(stopping?.reason.contains("last SSH connection ended at") == true, "\(stopping?.reason ?? "")")

        let woke = try await fixture.flare(["ssh", "dev", "--", "cat note"])
        #expect(woke.stdout == "kept\n")
        #expect(woke.stderr.contains("waking dev"))
    }

    @Test func sessionsAsleepPastTheirTTLArePurgedWithTheirSnapshots() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate(manifest: #"{"image":"x","persistedPaths":["/home/flare"],"sleepTtlSeconds":1}"#)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo data > file"]).status == 0)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let purged = await waitFor(timeout: 20) { (try? await fixture.flare(["session", "get", "dev"]).status) == 1 }
        #expect(purged)
        let blobs = fixture.directory.path("data/blobs/sha256")
        let left = await waitFor(timeout: 5) {
            ((try? FileManager.default.subpathsOfDirectory(atPath: blobs)) ?? []).allSatisfy { !$0.contains("/") }
        }
        #expect(left, "snapshot blobs should be collected")
    }

    @Test func saveNowThenRestoreLiveAndOnNextWake() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo first > work/note"]).status == 0)
        let saved = try await fixture.flare(["snapshot", "save", "dev", "--json"])
        #expect(saved.status == 0, "\(saved.stderr)")
        let first = try FlareJSON.decoder().decode(SnapshotInfo.self, from: Data(saved.stdout.utf8))

        #expect(try await fixture.flare(["ssh", "dev", "--", "echo second > work/note; touch work/extra"]).status == 0)
        let live = try await fixture.flare(["snapshot", "restore", "dev", first.id])
        #expect(live.status == 0, "\(live.stderr)")
        #expect(live.stdout.contains("Restored"))
        #expect(try await fixture.flare(["ssh", "dev", "--", "cat work/note; ls work"]).stdout == "first\nnote\n")

        #expect(try await fixture.flare(["ssh", "dev", "--", "echo third > work/note"]).status == 0)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let later = try await fixture.flare(["snapshot", "restore", "dev", first.id])
        #expect(later.stdout.contains("will be restored when it wakes"))
        #expect(try await fixture.flare(["ssh", "dev", "--", "cat work/note"]).stdout == "first\n")
    }

    @Test func killedAgentMidUploadKeepsThePreviousSnapshot() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "echo v1 > work/note"]).status == 0)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let listed = try await fixture.flare(["snapshot", "list", "dev", "--json"])
        let previous = try FlareJSON.decoder().decode([SnapshotInfo].self, from: Data(listed.stdout.utf8))
        #expect(previous.count == 1)

        #expect(try await fixture.flare(["ssh", "dev", "--", "echo v2 > work/note; head -c 400000000 /dev/urandom > work/big"])
            .status == 0)
        let info = try FlareJSON.decoder().decode(
            SessionInfo.self, from: Data(try await fixture.flare(["session", "get", "dev", "--json"]).stdout.utf8))
        let log = try TemporaryFile()
        let stop = try SpawnedProcess([TestProcess.binary("flare"), "session", "stop", "dev"],
                                      environment: fixture.environment, stdin: nil,
                                      stdout: log.handle.fileDescriptor, stderr: log.handle.fileDescriptor)
        // Kill the agent once its upload has started arriving.
        let uploads = fixture.directory.path("data/blobs/tmp")
        let uploading = await waitFor(timeout: 30) {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: uploads)) ?? []
            return files.contains { name in
                ((try? FileManager.default.attributesOfItem(atPath: uploads + "/" + name)[.size] as? Int) ?? 0) > 0
            }
        }
        #expect(uploading)
        #expect(try await TestProcess.run(["pkill", "-KILL", "-f", "--", "--session \(info.id)"]).status == 0)
        #expect(await stop.exited(timeout: 60) != nil)

        let after = try FlareJSON.decoder().decode(
            [SnapshotInfo].self, from: Data(try await fixture.flare(["snapshot", "list", "dev", "--json"]).stdout.utf8))
        #expect(after.map(\.id) == previous.map(\.id))
        #expect(after.first?.latest == true)
        #expect(await waitFor(timeout: 5) { ((try? FileManager.default.contentsOfDirectory(atPath: uploads)) ?? []).isEmpty },
                "the partial upload must be removed")
        let woke = try await fixture.flare(["ssh", "dev", "--", "cat work/note; ls work"])
        #expect(woke.stdout == "v1\nnote\n")
    }

    @Test func snapshotsPastTheStorageQuotaAreRefusedClearly() async throws {
        let fixture = try await ServerFixture(arguments: ["--max-storage-mib", "1"])
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "head -c 3000000 /dev/urandom > work/big"]).status == 0)
        let saved = try await fixture.flare(["snapshot", "save", "dev"])
        #expect(saved.status == 1)
        #expect(saved.stderr.contains("storage quota"), "\(saved.stderr)")
        #expect(try await fixture.flare(["snapshot", "list", "dev", "--json"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[\n\n]")
    }

    @Test func concurrentConnectionsShareOneWake() async throws {
        let fixture = try await ServerFixture()
        try await fixture.signUpWithTemplate(manifest: Self.manifest)
        #expect(try await fixture.flare(["session", "up", "dev", "--template", "base"]).status == 0)
        #expect(try await fixture.flare(["ssh", "dev", "--", "true"]).status == 0)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let results = ResultBox(count: 5)
        let command = [TestProcess.binary("flare"), "ssh", "dev", "--"]
        let environment = fixture.environment
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<5 {
                group.addTask {
                    results.set(index, try? await TestProcess.run(command + ["echo conn-\(index)"], environment: environment))
                }
            }
        }
        for index in 0..<5 { #expect(results.get(index)?.stdout == "conn-\(index)\n") }
        let events = try await fixture.flare(["session", "events", "dev", "--json"])
        let wakes = try FlareJSON.decoder().decode([SessionEvent].self, from: Data(events.stdout.utf8))
            .filter { $0.reason.contains("woken by a connection") }
        #expect(wakes.count == 1)
    }

    @Test func aCorruptSnapshotStopsTheWakeWithAClearReason() async throws {
        let fixture = try await ServerFixture()
        _ = try await startWithWork(fixture)
        #expect(try await fixture.flare(["session", "stop", "dev"]).status == 0)
        let blobs = fixture.directory.path("data/blobs/sha256")
        let stored = try FileManager.default.subpathsOfDirectory(atPath: blobs).filter { $0.contains("/") }
        #expect(stored.count == 1)
        let blob = try FileHandle(forWritingTo: URL(fileURLWithPath: blobs + "/" + stored[0]))
        try blob.seek(toOffset: 1000)
        try blob.write(contentsOf: Data(repeating: 0xff, count: 64))
        try blob.close()

        let start = try await fixture.flare(["session", "start", "dev"])
        #expect(start.status != 0)
        #expect(start.stderr.contains("corrupt"), "\(start.stderr)")
        let json = try await fixture.flare(["session", "get", "dev", "--json"]).stdout
        let info = try FlareJSON.decoder().decode(SessionInfo.self, from: Data(json.utf8))
        #expect(info.state == .failed)
        #expect(info.stateReason.contains("could not restore snapshot"))
    }
}
