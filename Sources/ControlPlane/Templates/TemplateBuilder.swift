import FlareContracts
import FlareHTTP
import Snapshot
import Foundation
import Logging
import ServiceLifecycle

/// Builds template versions into images through the Docker Engine API, one at a time: a
/// generated Dockerfile (base image, packages, setup script), `--network host` for the package
/// installs, the log kept per version, up to three attempts before `dead_lettered`.
struct TemplateBuilder: Sendable {
    let store: Store
    let engine: DockerEngine
    /// Where logs and bundles are; each build's context is made there too while it runs.
    let builds: TemplateBuilds
    /// The server's data directory, for the images' label.
    let dataDirectory: URL
    let logger: Logger
    static let maxAttempts = 3

    /// `burstflare/template-<id>:<version>`, the version with anything a tag cannot hold as `_`.
    static func imageTag(templateId: String, version: String) -> String {
        let tag = String(version.lowercased().map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" })
        return "burstflare/template-\(templateId.lowercased()):\(tag)"
    }

    var directory: URL { builds.directory }

    func run() async throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try await store.requeueInterruptedBuilds()
        while !Task.isCancelled {
            if let version = try await store.claimQueuedBuild() {
                await build(version)
            } else {
                try await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    /// The Dockerfile for a version: install packages and run the setup script as root, then give
    /// the image back to its own user.
    static func dockerfile(_ manifest: TemplateManifest, user: String) -> String {
        var lines = ["FROM \(manifest.image)", "USER root", "ENV DEBIAN_FRONTEND=noninteractive"]
        if !manifest.packages.isEmpty {
            lines.append("RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                + manifest.packages.joined(separator: " ") + " && rm -rf /var/lib/apt/lists/*")
        }
        for file in manifest.files {
            lines.append("COPY bundle/\(file.from) \(file.to)")
        }
        if manifest.setup != nil {
            lines += ["COPY setup.sh /tmp/flare-setup.sh", "RUN sh -e /tmp/flare-setup.sh && rm -f /tmp/flare-setup.sh"]
        }
        lines.append("USER \(user.isEmpty ? "root" : user)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The build context as a plain tar: Dockerfile, setup.sh, and `bundle/` with the bundle's files.
    private func context(for version: TemplateVersionRecord, user: String) async throws -> Data {
        let manifest = version.manifest
        let root = directory.appendingPathComponent("context-\(version.id)")
        try? FileManager.default.removeItem(at: root)
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data(Self.dockerfile(manifest, user: user).utf8).write(to: root.appendingPathComponent("Dockerfile"))
        var paths = ["/Dockerfile"]
        if let setup = manifest.setup {
            try Data(setup.utf8).write(to: root.appendingPathComponent("setup.sh"))
            paths.append("/setup.sh")
        }
        if !manifest.files.isEmpty {
            try await TemplateBuilds.unpack(builds.bundlePath(versionId: version.id),
                                            paths: manifest.files.map { "/" + $0.from },
                                            into: root.appendingPathComponent("bundle"))
            paths.append("/bundle")
        }
        let tar = directory.appendingPathComponent("context-\(version.id).tar")
        defer { try? FileManager.default.removeItem(at: tar) }
        var plain = SnapshotWriter()
        plain.compressed = false
        let (writer, entries) = (plain, paths)
        _ = try await onThread { try writer.create(root: root.path, persistedPaths: entries, output: tar.path) }
        return try Data(contentsOf: tar)
    }

    private func build(_ version: TemplateVersionRecord) async {
        let manifest = version.manifest
        let tag = Self.imageTag(templateId: version.templateId, version: version.version)
        let log = LogFile(url: builds.logPath(versionId: version.id))
        defer { log.close() }
        log.append("== build \(version.version), attempt \(version.buildAttempts) of \(Self.maxAttempts): \(tag)\n")
        logger.info("template build started", metadata: ["template.version": "\(version.id)", "build.attempt": "\(version.buildAttempts)"])
        do {
            guard let base = try await engine.image(manifest.image) else {
                throw DockerEngineError(status: 404, message: "the base image \(manifest.image) does not exist on this "
                    + "server's Docker engine (images are built locally; see Scripts/docker-setup.sh)")
            }
            // Labelled like the sessions' containers, so a server's images can be found (and pruned).
            let labels = [DockerRuntimeDriver.dataLabel: dataDirectory.path, "burstflare.template": version.templateId]
            let imageId = try await engine.build(tag: tag, labels: labels,
                                                 context: try await context(for: version, user: base.Config.User ?? "")) {
                log.append($0)
            }
            try await store.updateTemplateVersion(id: version.id) {
                $0.buildState = TemplateBuildState.succeeded.rawValue
                $0.buildImage = tag
                $0.buildImageId = imageId
                $0.buildError = nil
            }
            log.append("== built \(tag) (\(imageId))\n")
            logger.info("template build succeeded", metadata: ["template.version": "\(version.id)", "image.id": "\(imageId)"])
        } catch {
            let message = String(describing: error).prefix(500)
            let final = version.buildAttempts >= Self.maxAttempts
            log.append("== failed: \(message)\n" + (final ? "== giving up after \(Self.maxAttempts) attempts\n" : "== retrying\n"))
            logger.warning("template build failed", metadata: ["template.version": "\(version.id)", "error": "\(message)"])
            try? await store.updateTemplateVersion(id: version.id) {
                $0.buildState = (final ? TemplateBuildState.deadLettered : .queued).rawValue
                $0.buildError = String(message)
            }
        }
    }
}

/// A build's log, open for appending for the length of one attempt.
final class LogFile: @unchecked Sendable {
    private let handle: FileHandle?

    init(url: URL) {
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try? FileHandle(forWritingTo: url)
        _ = try? handle?.seekToEnd()
    }

    func append(_ text: String) {
        try? handle?.write(contentsOf: Data(text.utf8))
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
            throw APIError.badRequest("the bundle was refused: \(error.message)", code: "invalid_bundle")
        }
        for path in paths {
            var info = stat()
            let target = root.path + path
            // The restore makes an empty directory where the archive had nothing.
            let empty = (try? FileManager.default.contentsOfDirectory(atPath: target))?.isEmpty ?? false
            guard lstat(target, &info) == 0, !empty else {
                throw APIError.badRequest("the bundle has no \(path.dropFirst()), which manifest.files names",
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
