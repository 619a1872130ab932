import FlareContracts
import Snapshot
import Foundation
import Logging
import ServiceLifecycle

/// Limits on one template build's `setup` step.
public struct BuildLimits: Sendable {
    public var memoryBytes: Int64 = 2 << 30
    public var nanoCPUs: Int64 = 1_000_000_000
    public var pids: Int64 = 1024
    /// The setup step is killed past this.
    public var timeout: Duration = .seconds(20 * 60)
    /// Log kept per attempt; the rest is dropped with a note.
    public var maxLogBytes = 1 << 20
    /// The network the `setup` step runs in: `none`, or an isolated egress network the operator
    /// made (never `host`).
    public var setupNetwork = "none"

    public init() {}
}

/// Builds template versions into images through the Docker Engine API, one at a time, taking
/// accounts in turn (one account's queue cannot hold everyone else's back). Two steps:
///
/// 1. **Packages**: a generated Dockerfile that only runs `apt-get install` with the manifest's
///    validated package names, built with the host network (the one step that may reach the
///    package mirror). No user code runs here.
/// 2. **Files and setup**: a container of that image with no network (``BuildLimits``), memory,
///    CPU, pids and time limits and `no-new-privileges`; the bundle's files and the setup script are
///    streamed in from disk, the script runs, and the container is committed as the version's image.
///
/// The log is kept per version (capped per attempt); up to three attempts before `dead_lettered`.
struct TemplateBuilder: Sendable {
    let store: Store
    let engine: DockerEngine
    /// Where logs and bundles are; each build's context is made there too while it runs.
    let builds: TemplateBuilds
    /// The server's data directory, for the images' label.
    let dataDirectory: URL
    var limits = BuildLimits()
    let logger: Logger
    static let maxAttempts = 3
    static let templateLabel = "burstflare.template"

    /// `burstflare/template-<id>:<version>`, the version with anything a tag cannot hold as `_`.
    static func imageTag(templateId: String, version: String) -> String {
        "burstflare/template-\(templateId.lowercased()):\(tagPart(version))"
    }

    static func tagPart(_ version: String) -> String {
        String(version.lowercased().map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
    }

    var directory: URL { builds.directory }

    func run() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try await store.requeueInterruptedBuilds()
        var turns = FairQueue()
        while !Task.isCancelled {
            let queued = try await store.queuedBuilds()
            if let pick = turns.next(queued.map { FairQueue.Entry(id: $0.version.id, owner: $0.ownerId) }),
               case .moved(let version) = try await store.buildTransition(versionId: pick.id, .claim, update: {
                   $0.buildAttempts += 1
               })
            {
                turns.served(pick.owner)
                await build(version)
            } else {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// Step 1's Dockerfile: packages as root, and the image's own user back when nothing follows.
    static func dockerfile(_ manifest: TemplateManifest, user: String?) -> String {
        var lines = ["FROM \(manifest.image)", "USER root", "ENV DEBIAN_FRONTEND=noninteractive"]
        if !manifest.packages.isEmpty {
            lines.append("RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                + manifest.packages.joined(separator: " ") + " && rm -rf /var/lib/apt/lists/*")
        }
        if let user { lines.append("USER \(user.isEmpty ? "root" : user)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A tar holding only `content` as `Dockerfile`.
    private func dockerfileContext(_ content: String, versionId: String) async throws -> Data {
        let root = directory.appendingPathComponent("context-\(versionId)")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data(content.utf8).write(to: root.appendingPathComponent("Dockerfile"))
        let tar = directory.appendingPathComponent("context-\(versionId).tar")
        defer { try? FileManager.default.removeItem(at: tar) }
        try await Self.tar(root: root, paths: ["/Dockerfile"], into: tar)
        return try Data(contentsOf: tar)
    }

    /// Step 2's input as a tar file on disk: each bundle file at its `to` path, and the setup script.
    private func setupArchive(for version: TemplateVersionRecord, into tar: URL) async throws {
        let manifest = version.manifest
        let root = directory.appendingPathComponent("setup-\(version.id)")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        let unpacked = directory.appendingPathComponent("bundle-\(version.id)")
        try? FileManager.default.removeItem(at: unpacked)
        defer { try? FileManager.default.removeItem(at: unpacked) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        var paths: [String] = []
        if !manifest.files.isEmpty {
            try await TemplateBuilds.unpack(builds.bundlePath(versionId: version.id),
                                            paths: manifest.files.map { "/" + $0.from }, into: unpacked)
            for file in manifest.files {
                let target = root.appendingPathComponent(String(file.to.drop { $0 == "/" }))
                // The server moves these as root: neither side may pass through a link the bundle
                // carries (a `from` inside a link to /etc, a `to` under an entry that is one).
                try Self.requireRealDirectories(above: file.from, in: unpacked)
                try Self.requireRealDirectories(above: String(file.to.dropFirst()), in: root)
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(),
                                                        withIntermediateDirectories: true)
                try FileManager.default.moveItem(at: unpacked.appendingPathComponent(file.from), to: target)
                paths.append(file.to)
            }
        }
        if let setup = manifest.setup {
            let script = root.appendingPathComponent("tmp/flare-setup.sh")
            try FileManager.default.createDirectory(at: script.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(setup.utf8).write(to: script)
            paths.append("/tmp/flare-setup.sh")
        }
        try await Self.tar(root: root, paths: paths, into: tar)
    }

    /// Every directory that exists between `base` and the relative `path` (not the entry itself)
    /// is a real directory, not a link.
    static func requireRealDirectories(above path: String, in base: URL) throws {
        var current = base.path
        for component in path.split(separator: "/").dropLast() {
            current += "/" + component
            var info = stat()
            if lstat(current, &info) != 0, errno == ENOENT { return }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                throw BuildError("the bundle's \(path) lies under a link or a file (\(component)); "
                    + "files must name real directories")
            }
        }
    }

    private static func tar(root: URL, paths: [String], into tar: URL) async throws {
        var plain = SnapshotWriter()
        plain.compressed = false
        let writer = plain
        _ = try await onThread { try writer.create(root: root.path, persistedPaths: paths, output: tar.path) }
    }

    private func build(_ version: TemplateVersionRecord) async {
        let manifest = version.manifest
        let tag = Self.imageTag(templateId: version.templateId, version: version.version)
        let log = LogFile(url: builds.logPath(versionId: version.id), limit: limits.maxLogBytes)
        defer { log.close() }
        log.append("== build \(version.version), attempt \(version.buildAttempts) of \(Self.maxAttempts): \(tag)\n")
        logger.info("template build started", metadata: ["template.version": "\(version.id)", "build.attempt": "\(version.buildAttempts)"])
        do {
            guard let base = try await engine.image(manifest.image) else {
                throw DockerEngineError(status: 404, message: "the base image \(manifest.image) does not exist on this "
                    + "server's Docker engine (images are built locally; see Scripts/docker-setup.sh)")
            }
            let template = try await store.template(idIgnoringCase: version.templateId)
            if let owner = base.Config.Labels?[Self.templateLabel] {
                // Built from a template's image: only the same account's, and its `apt-get` is that
                // template's (its setup may have replaced it), so it never gets the network.
                guard let baseTemplate = try await store.template(idIgnoringCase: owner),
                      baseTemplate.ownerId == template?.ownerId
                else { throw BuildError("the base image \(manifest.image) belongs to another account") }
                guard manifest.packages.isEmpty else {
                    throw BuildError("packages can only be installed on an operator image; add them to the template "
                        + "\(manifest.image) was built from")
                }
            }
            let labels = [DockerRuntimeDriver.dataLabel: dataDirectory.path, Self.templateLabel: version.templateId]
            let user = base.Config.User ?? ""
            let needsSetup = manifest.setup != nil || !manifest.files.isEmpty
            let packagesTag = needsSetup ? tag + "-packages" : tag
            log.append("== step 1: packages (\(manifest.packages.isEmpty ? "none" : manifest.packages.joined(separator: " ")))\n")
            var imageId = try await engine.build(
                tag: packagesTag, network: manifest.packages.isEmpty ? "none" : "host", labels: labels,
                context: try await dockerfileContext(Self.dockerfile(manifest, user: needsSetup ? nil : user),
                                                     versionId: version.id)) { log.append($0) }
            if needsSetup {
                defer { Task { [engine] in try? await engine.removeImage(packagesTag) } }
                log.append("== step 2: files and setup (network \(limits.setupNetwork), "
                    + "\(limits.memoryBytes >> 20) MiB, \(Double(limits.nanoCPUs) / 1e9) CPU, \(limits.pids) pids, "
                    + "\(limits.timeout.components.seconds) s)\n")
                imageId = try await runSetup(version, image: packagesTag, tag: tag, user: user, labels: labels, log: log)
            }
            let builtId = imageId
            _ = try await store.buildTransition(versionId: version.id, .succeed) {
                $0.buildImage = tag
                $0.buildImageId = builtId
                $0.buildError = nil
            }
            log.append("== built \(tag) (\(imageId))\n")
            logger.info("template build succeeded", metadata: ["template.version": "\(version.id)", "image.id": "\(imageId)"])
        } catch {
            let message = String(describing: error).prefix(500)
            let final = version.buildAttempts >= Self.maxAttempts
            log.append("== failed: \(message)\n" + (final ? "== giving up after \(Self.maxAttempts) attempts\n" : "== retrying\n"))
            logger.warning("template build failed", metadata: ["template.version": "\(version.id)", "error": "\(message)"])
            _ = try? await store.buildTransition(versionId: version.id, final ? .gaveUp : .attemptFailed) {
                $0.buildError = String(message)
            }
        }
    }

    /// Step 2: the bundle's files and the setup script in a confined container, committed as `tag`.
    private func runSetup(_ version: TemplateVersionRecord, image: String, tag: String, user: String,
                          labels: [String: String], log: LogFile) async throws -> String {
        let name = "flare-build-\(version.id.lowercased())"
        try? await engine.remove(name)
        let archive = directory.appendingPathComponent("setup-\(version.id).tar")
        defer { try? FileManager.default.removeItem(at: archive) }
        try await setupArchive(for: version, into: archive)
        let config = DockerEngine.ContainerConfig(
            Image: image,
            Cmd: version.manifest.setup == nil ? ["true"] : ["sh", "-e", "/tmp/flare-setup.sh"],
            Env: ["DEBIAN_FRONTEND=noninteractive"], Labels: labels, User: "0:0", WorkingDir: "/",
            HostConfig: .init(
                Binds: [], NetworkMode: limits.setupNetwork, Memory: limits.memoryBytes,
                MemorySwap: limits.memoryBytes, NanoCpus: limits.nanoCPUs, PidsLimit: limits.pids,
                CapDrop: ["NET_RAW", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE", "MKNOD", "AUDIT_WRITE"],
                SecurityOpt: ["no-new-privileges:true"]))
        let container = try await engine.create(name: name, config)
        defer { Task { [engine] in try? await engine.remove(name) } }
        try await engine.putArchive(container, tar: archive)
        try await engine.start(container)
        let engine = self.engine
        let output = Task { try await engine.followLogs(container) { log.append(String(decoding: $0, as: UTF8.self)) } }
        defer { output.cancel() }
        let status = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask { try await engine.wait(container) }
            group.addTask { [timeout = limits.timeout] in
                try await Task.sleep(for: timeout)
                try? await engine.kill(container)
                throw BuildError("setup ran longer than \(timeout.components.seconds) s and was stopped")
            }
            defer { group.cancelAll() }
            guard let status = try await group.next() else { throw BuildError("the setup container vanished") }
            return status
        }
        // The log stream ends with the container; give it a moment to deliver the last lines.
        _ = await withTaskGroup(of: Void.self) { group in
            group.addTask { _ = try? await output.value }
            group.addTask { try? await Task.sleep(for: .seconds(5)) }
            await group.next()
            group.cancelAll()
        }
        if version.manifest.setup != nil, status != 0 {
            throw BuildError(status == 137 ? "setup was killed (out of memory or over a limit; exit 137)"
                : "setup exited with status \(status)")
        }
        let (repository, tagPart) = Self.split(tag)
        return try await engine.commit(container, repository: repository, tag: tagPart,
                                       changes: ["USER \(user.isEmpty ? "root" : user)", "WORKDIR /", "CMD [\"/bin/sh\"]"],
                                       labels: labels)
    }

    static func split(_ tag: String) -> (String, String) {
        guard let colon = tag.lastIndex(of: ":") else { return (tag, "latest") }
        return (String(tag[..<colon]), String(tag[tag.index(after: colon)...]))
    }
}

struct BuildError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Takes accounts in turn: the next build is the oldest queued one of the account served least
/// recently (never served first), so one account's long queue cannot hold everyone else's back.
struct FairQueue {
    struct Entry: Equatable {
        var id: String
        var owner: String
    }

    private var lastServed: [String: Int] = [:]
    private var turn = 0

    /// `queued` in queue order (oldest first).
    func next(_ queued: [Entry]) -> Entry? {
        queued.enumerated().min { a, b in
            let (x, y) = (lastServed[a.element.owner] ?? -1, lastServed[b.element.owner] ?? -1)
            return x != y ? x < y : a.offset < b.offset
        }?.element
    }

    mutating func served(_ owner: String) {
        turn += 1
        lastServed[owner] = turn
    }
}

/// A build's log, open for appending for the length of one attempt.
final class LogFile: @unchecked Sendable {
    private let handle: FileHandle?
    private let lock = NSLock()
    /// Bytes this attempt may still write; past it one note and nothing more.
    private var remaining: Int
    private var truncated = false

    init(url: URL, limit: Int = .max) {
        remaining = limit
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try? FileHandle(forWritingTo: url)
        _ = try? handle?.seekToEnd()
    }

    func append(_ text: String) {
        lock.withLock {
            let data = Data(text.utf8)
            if data.count <= remaining {
                remaining -= data.count
                try? handle?.write(contentsOf: data)
            } else if !truncated {
                truncated = true
                try? handle?.write(contentsOf: data.prefix(remaining))
                try? handle?.write(contentsOf: Data("\n== log truncated: this attempt wrote more than the limit\n".utf8))
                remaining = 0
            }
        }
    }

    func close() {
        try? handle?.close()
    }
}

/// Where builds keep their logs and bundles (the API writes bundles and reads logs).
struct TemplateBuilds: Sendable {
    let directory: URL
    /// The largest bundle accepted.
    var maxBundleBytes: Int64 = 256 << 20

    func logPath(versionId: String) -> URL {
        directory.appendingPathComponent("\(versionId).log")
    }

    var bundleDirectory: URL { directory.appendingPathComponent("bundles") }

    func bundlePath(versionId: String) -> URL {
        bundleDirectory.appendingPathComponent("\(versionId).tar")
    }

    /// Unpacks `bundle` under `root` with the snapshot restore's checks, accepting only `paths`
    /// (absolute forms of the manifest's `from`s), each of which must be there.
    static func unpack(_ bundle: URL, paths: [String], into root: URL) async throws {
        do {
            try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
            var bounded = SnapshotRestorer()
            bounded.limits = RestoreLimits(maxTotalBytes: 4 << 30, maxEntries: 100_000)
            let restorer = bounded
            _ = try await onThread { try restorer.restore(archive: bundle.path, root: root.path, persistedPaths: paths) }
        } catch let error as SnapshotError {
            throw ServiceError.invalid("the bundle was refused: \(error.message)", code: "invalid_bundle")
        }
        for path in paths {
            var info = stat()
            let target = root.path + path
            // The restore makes an empty directory where the archive had nothing.
            let empty = (try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty ?? false
            guard lstat(target, &info) == 0, !empty else {
                throw ServiceError.invalid("the bundle has no \(path.dropFirst()), which manifest.files names",
                                          code: "invalid_bundle")
            }
        }
    }

    /// Refuses a bundle that would not unpack cleanly, keeping nothing.
    func check(bundle: URL, paths: [String]) async throws {
        let scratch = directory.appendingPathComponent("check-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        try await Self.unpack(bundle, paths: paths, into: scratch)
    }
}
