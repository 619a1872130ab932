import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct Workspace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, create, rename and delete workspaces; see their members.",
            discussion: """
                Sign-up makes your personal workspace; create more to share templates and sessions.

                Examples:
                  flare workspace list
                  flare workspace create platform-team
                  flare workspace rename platform-team platform
                  flare workspace members platform
                  flare workspace delete platform
                """,
            subcommands: [List.self, Create.self, Rename.self, Delete.self, Members.self])
    }
}

extension Flare.Workspace {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The workspaces you are a member of, with your role.")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            let workspaces = try await global.authenticatedClient().call(Endpoints.Workspaces.list)
            if output.json { return try printJSON(workspaces) }
            printTable(["NAME", "ROLE", "CREATED", "ID"], workspaces.map {
                [$0.name + ($0.personal ? " (personal)" : ""), $0.role, relative($0.createdAt), $0.id]
            })
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a workspace; you are its owner.", discussion: "Example: flare workspace create platform-team")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "Its name: 1-63 lowercase letters, digits or '-'.")
        var name: String

        func run() async throws {
            let workspace = try await global.authenticatedClient().call(Endpoints.Workspaces.create, WorkspaceNameRequest(name: name))
            if output.json { return try printJSON(workspace) }
            print("Created workspace \(workspace.name) (\(workspace.id)).")
        }
    }

    struct Rename: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Rename a workspace (owners).", discussion: "Example: flare workspace rename platform-team platform")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The workspace's name or id.")
        var workspace: String
        @Argument(help: "Its new name.")
        var name: String

        func run() async throws {
            let renamed = try await global.authenticatedClient().call(Endpoints.Workspaces.rename.at(workspace),
                                                                      WorkspaceNameRequest(name: name))
            if output.json { return try printJSON(renamed) }
            print("Renamed \(workspace) to \(renamed.name).")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete an empty workspace (owners; not your personal one).",
            discussion: "Example: flare workspace delete platform")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The workspace's name or id.")
        var workspace: String

        func run() async throws {
            try await global.authenticatedClient().call(Endpoints.Workspaces.delete.at(workspace))
            print("Deleted workspace \(workspace).")
        }
    }

    struct Members: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A workspace's members and their roles.", discussion: "Example: flare workspace members platform")
        @OptionGroup var global: GlobalOptions
        @OptionGroup var output: OutputOptions
        @Argument(help: "The workspace's name or id.")
        var workspace: String

        func run() async throws {
            let members = try await global.authenticatedClient().call(Endpoints.Workspaces.members.at(workspace))
            if output.json { return try printJSON(members) }
            printTable(["EMAIL", "ROLE", "JOINED"], members.map { [$0.email, $0.role, relative($0.joinedAt)] })
        }
    }
}
