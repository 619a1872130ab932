import ArgumentParser
import FlareContracts
import Foundation

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
            let template: TemplateInfo = try await global.authenticatedClient()
                .post("/api/templates", TemplateCreateRequest(name: name, description: description))
            print("Created template \(template.name) (\(template.id)).")
        }
    }

    struct Upload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a version to a template from a JSON manifest.",
            discussion: """
                The manifest: {"image": "debian:bookworm", "persistedPaths": ["/home/flare"],
                "idleTimeoutSeconds": 1800, "sleepTtlSeconds": 604800, "env": {"EDITOR": "vim"}}

                Example: flare template upload base --version 1 --manifest manifest.json
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Template name or id.")
        var template: String
        @Option(help: "Version label, e.g. 1 or 1.2.0.")
        var version: String
        @Option(help: "Path of the manifest JSON file.")
        var manifest: String

        func run() async throws {
            guard let text = FileManager.default.contents(atPath: manifest) else {
                throw CLIError("cannot read \(manifest)")
            }
            let object: Any
            do {
                object = try JSONSerialization.jsonObject(with: text)
            } catch {
                throw CLIError("\(manifest) is not valid JSON")
            }
            let body = try JSONSerialization.data(withJSONObject: ["version": version, "manifest": object])
            let created: TemplateVersionInfo = try await global.authenticatedClient()
                .post("/api/templates/\(escaped(template))/versions", json: body)
            print("Added version \(created.version) to \(template). Promote it with `flare template promote \(template) \(created.version)`.")
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
            struct Body: Encodable { var version: String }
            let info: TemplateInfo = try await global.authenticatedClient()
                .post("/api/templates/\(escaped(template))/promote", Body(version: version))
            print("Promoted \(info.name) \(info.activeVersion?.version ?? version).")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your templates.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let templates: [TemplateInfo] = try await global.authenticatedClient().get("/api/templates")
            if output.json { return try printJSON(templates) }
            printTable(["NAME", "ACTIVE", "VERSIONS", "ID"], templates.map {
                [$0.name, $0.activeVersion?.version ?? "-", $0.versions.map(\.version).joined(separator: ","), $0.id]
            })
        }
    }
}
