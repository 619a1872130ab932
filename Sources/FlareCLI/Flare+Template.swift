import ArgumentParser
import FlareClient
import FlareContracts
import Snapshot
import Foundation
import NIOCore

extension Flare {
    struct Template: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create, version and promote templates.",
            subcommands: [Create.self, Upload.self, Promote.self, List.self])
    }
}

extension Flare.Template {
    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a template.", discussion: "Example: flare template create base")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Template name (lowercase letters, digits, '-').")
        var name: String
        @Option(help: "A short description.")
        var description: String?

        func run() async throws {
            let template = try await global.authenticatedClient()
                .call(Endpoints.Templates.create, TemplateCreateRequest(name: name, description: description))
            print("Created template \(template.name) (\(template.id)).")
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a version to a template from a JSON manifest (built into an image under docker).",
            discussion: """
                The manifest: {"image": "burstflare/session-base", "packages": ["jq"],
                "setup": "echo built > /etc/motd", "persistedPaths": ["/home/flare"],
                "resources": {"memoryMB": 2048, "cpus": 2, "pids": 1024},
                "idleTimeoutSeconds": 1800, "sleepTtlSeconds": 604800, "env": {"EDITOR": "vim"}}

                Under the docker runtime the version is built (packages, then setup as root); --wait
                follows the build log and fails if the build does.

                Example: flare template upload base --version 2 --manifest manifest.json --wait
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Template name or id.")
        var template: String
        @Option(help: "Version label, e.g. 1 or 1.2.0.")
        var version: String
        @Option(help: "Path of the manifest JSON file.")
        var manifest: String
        @Option(help: "Directory holding the files the manifest's \"files\" name (sent as the version's bundle).")
        var bundle: String?
        @Flag(help: "Follow the image build and exit non-zero if it fails.")
        var wait = false

        func run() async throws {
            guard let text = FileManager.default.contents(atPath: manifest) else {
                throw CLIError("cannot read \(manifest)")
            }
            let object: JSONValue
            do {
                object = try JSONDecoder().decode(JSONValue.self, from: text)
            } catch {
                throw CLIError("\(manifest) is not valid JSON")
            }
            let client = try await global.authenticatedClient()
            let created = try await client.call(Endpoints.Templates.createVersion.at(template),
                                                .object(["version": .string(version), "manifest": object]))
            var state = created.build?.state ?? .notNeeded
            if state == .awaitingBundle {
                guard let bundle else {
                    throw CLIError("version \(created.version) names files (manifest \"files\"); upload them with --bundle DIR")
                }
                state = try await Self.upload(bundle: bundle, files: created.manifest.files, client: client,
                                              to: Endpoints.Templates.uploadBundle.at(template, created.version))
            } else if bundle != nil {
                throw CLIError("--bundle is only for manifests with \"files\" (under the docker runtime)")
            }
            guard state != .notNeeded else {
                print("Added version \(created.version) to \(template). Promote it with `flare template promote \(template) \(created.version)`.")
                return
            }
            guard wait else {
                print("Added version \(created.version) to \(template); its image is building. "
                    + "Follow it with `flare build log \(template)@\(created.version) --follow`.")
                return
            }
            printStatus("building \(template)@\(created.version)…")
            try await BuildLog.follow(client: client, template: template, version: created.version,
                                      output: FileHandle.standardError)
            let built = try await BuildLog.version(client: client, template: template, version: created.version)
            guard let build = built.build, build.state.isUsable else {
                throw CLIError("the build of \(template)@\(created.version) failed after \(built.build?.attempts ?? 0) "
                    + "attempt(s): \(built.build?.error ?? "unknown error"); see `flare build log \(template)@\(created.version)`")
            }
            print("Built \(template)@\(created.version) (\(build.image ?? "")). "
                + "Promote it with `flare template promote \(template) \(created.version)`.")
        }

        /// Archives the named files of `bundle` (tar + zstd, as snapshots are) and uploads them.
        static func upload(bundle: String, files: [TemplateFile], client: FlareClient,
                           to target: EndpointAddress<RawBytes, TemplateVersionInfo>) async throws
            -> TemplateBuildState
        {
            let root = URL(fileURLWithPath: bundle).standardizedFileURL.path
            for file in files where !FileManager.default.fileExists(atPath: root + "/" + file.from) {
                throw CLIError("\(bundle) has no \(file.from), which the manifest's \"files\" names")
            }
            let archive = FileManager.default.temporaryDirectory.appendingPathComponent("flare-bundle-\(UUID().uuidString).tar.zst")
            defer { try? FileManager.default.removeItem(at: archive) }
            let paths = files.map { "/" + $0.from }
            _ = try await onThread { try SnapshotWriter().create(root: root, persistedPaths: paths, output: archive.path) }
            let data = try Data(contentsOf: archive)
            printStatus("uploading the bundle (\(data.count) bytes)…")
            let info = try await client.upload(target, .bytes(ByteBuffer(data: data)), contentType: "application/x-tar")
            return info.build?.state ?? .queued
        }
    }

    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a version the one new sessions use.", discussion: "Example: flare template promote base 1")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Template name or id.")
        var template: String
        @Argument(help: "Version label or id.")
        var version: String

        func run() async throws {
            let info = try await global.authenticatedClient()
                .call(Endpoints.Templates.promote.at(template), TemplatePromoteRequest(version: version))
            print("Promoted \(info.name) \(info.activeVersion?.version ?? version).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your templates.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let templates = try await global.authenticatedClient().all(Endpoints.Templates.list)
            if output.json { return try printJSON(templates) }
            printTable(["NAME", "ACTIVE", "VERSIONS", "ID"], templates.map {
                [$0.name, $0.activeVersion?.version ?? "-",
                 $0.versions.map { version in
                     version.build.map { $0.state == .notNeeded ? version.version : "\(version.version) (\($0.state.rawValue))" }
                         ?? version.version
                 }.joined(separator: ", "), $0.id]
            })
        }
    }
}
