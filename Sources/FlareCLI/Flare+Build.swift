import ArgumentParser
import AsyncHTTPClient
import FlareClient
import FlareContracts
import Foundation
import NIOCore

extension Flare {
    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Template image builds (docker runtime).", subcommands: [Log.self])
    }
}

extension Flare.Build {
    struct Log: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a template version's build log.",
            discussion: """
                VERSION is TEMPLATE@VERSION. With --follow, prints the log as the build runs and exits
                when it ends: 0 if it succeeded, 1 if it was given up (dead_lettered).

                Example: flare build log base@2 --follow
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "TEMPLATE@VERSION, e.g. base@2.")
        var version: String
        @Flag(help: "Keep printing until the build ends.")
        var follow = false

        func validate() throws {
            guard version.split(separator: "@").count == 2 else {
                throw ValidationError("VERSION must be TEMPLATE@VERSION, e.g. base@2")
            }
        }

        func run() async throws {
            let parts = version.split(separator: "@").map(String.init)
            let client = try await global.authenticatedClient()
            try await BuildLog.follow(client: client, template: parts[0], version: parts[1],
                                      output: FileHandle.standardOutput, follow: follow)
            guard follow else { return }
            let info = try await BuildLog.version(client: client, template: parts[0], version: parts[1])
            if info.build?.state == .deadLettered { throw ExitCode(1) }
        }
    }
}

/// Reading build logs and build states.
enum BuildLog {
    /// Streams `GET …/build-log[?follow=true]` to `output`.
    static func follow(client: FlareClient, template: String, version: String, output: FileHandle,
                       follow: Bool = true) async throws {
        let log = Endpoints.Templates.buildLog.at(template, version)
        let response = try await client.open(follow ? log.query(["follow": "true"]) : log, timeout: .hours(2))
        for try await chunk in response.body {
            output.write(Data(buffer: chunk))
        }
    }

    static func version(client: FlareClient, template: String, version: String) async throws -> TemplateVersionInfo {
        let info = try await client.call(Endpoints.Templates.get.at(template))
        guard let found = info.versions.first(where: { $0.version == version || $0.id == version }) else {
            throw CLIError("\(template) has no version \(version)")
        }
        return found
    }
}
