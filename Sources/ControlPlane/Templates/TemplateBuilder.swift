import FlareContracts
import Foundation
import Logging
import ServiceLifecycle

/// Builds template versions into images through the Docker Engine API, one at a time: a
/// generated Dockerfile (base image, packages, setup script), `--network host` for the package
/// installs, the log kept per version, up to three attempts before `dead_lettered`.
struct TemplateBuilder: Sendable {
    let store: Store
    let engine: DockerEngine
    /// `<data>/builds`: one log per version, and each build's context while it runs.
    let directory: URL
    let logger: Logger
    static let maxAttempts = 3

    static func imageTag(templateId: String, version: String) -> String {
        "burstflare/template-\(templateId.lowercased()):\(version.lowercased().map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" }.map(String.init).joined())"
    }

    func logPath(versionId: String) -> URL {
        directory.appendingPathComponent("\(versionId).log")
    }

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
        if manifest.setup != nil {
            lines += ["COPY setup.sh /tmp/flare-setup.sh", "RUN sh -e /tmp/flare-setup.sh && rm -f /tmp/flare-setup.sh"]
        }
        lines.append("USER \(user.isEmpty ? "root" : user)")
        return lines.joined(separator: "\n") + "\n"
    }

    private func build(_ version: TemplateVersionRecord) async {
        let manifest = version.manifest
        let tag = Self.imageTag(templateId: version.templateId, version: version.version)
        let log = LogFile(url: logPath(versionId: version.id))
        log.append("== build \(version.version), attempt \(version.buildAttempts) of \(Self.maxAttempts): \(tag)\n")
        logger.info("template build started", metadata: ["template.version": "\(version.id)", "build.attempt": "\(version.buildAttempts)"])
        do {
            guard let base = try await engine.image(manifest.image) else {
                throw DockerEngineError(status: 404, message: "the base image \(manifest.image) does not exist on this "
                    + "server's Docker engine (images are built locally; see Scripts/docker-setup.sh)")
            }
            var context: [(String, Data)] = [("Dockerfile", Data(Self.dockerfile(manifest, user: base.Config.User ?? "").utf8))]
            if let setup = manifest.setup { context.append(("setup.sh", Data(setup.utf8))) }
            let imageId = try await engine.build(tag: tag, context: TarWriter.archive(context)) { log.append($0) }
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

/// Appends to a build log, creating it on first use.
struct LogFile: Sendable {
    let url: URL

    func append(_ text: String) {
        if !FileManager.default.fileExists(atPath: url.path) {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        guard let handle = try? FileHandle(forWritingTo: url) else { return }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: Data(text.utf8))
    }
}

/// A minimal ustar writer for small in-memory build contexts (regular files, short names).
enum TarWriter {
    static func archive(_ files: [(String, Data)]) -> Data {
        var out = Data()
        for (name, content) in files {
            var header = [UInt8](repeating: 0, count: 512)
            func put(_ text: String, at offset: Int, width: Int) {
                for (index, byte) in text.utf8.prefix(width).enumerated() { header[offset + index] = byte }
            }
            func octal(_ value: Int, at offset: Int, width: Int) {
                put(String(String(value, radix: 8).suffix(width - 1)).leftPadded(to: width - 1), at: offset, width: width - 1)
            }
            put(name, at: 0, width: 100)
            octal(0o644, at: 100, width: 8)
            octal(0, at: 108, width: 8)
            octal(0, at: 116, width: 8)
            octal(content.count, at: 124, width: 12)
            octal(Int(Date().timeIntervalSince1970), at: 136, width: 12)
            put("        ", at: 148, width: 8)
            header[156] = UInt8(ascii: "0")
            put("ustar", at: 257, width: 6)
            put("00", at: 263, width: 2)
            let checksum = header.reduce(0) { $0 + Int($1) }
            put(String(String(checksum, radix: 8)).leftPadded(to: 6) + "\0 ", at: 148, width: 8)
            out.append(contentsOf: header)
            out.append(content)
            out.append(Data(count: (512 - content.count % 512) % 512))
        }
        out.append(Data(count: 1024))
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}

/// Where builds keep their logs (the API reads them).
struct TemplateBuilds: Sendable {
    let directory: URL

    func logPath(versionId: String) -> URL {
        directory.appendingPathComponent("\(versionId).log")
    }
}
