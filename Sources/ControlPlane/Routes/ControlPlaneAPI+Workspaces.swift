import FlareContracts
import Foundation
import Hummingbird

/// Workspace routes: adapters over ``WorkspaceService``.
extension ControlPlaneAPI {
    func addWorkspaceRoutes(to group: RouterGroup<UserRequestContext>) {
        group.on(Endpoints.Workspaces.list) { _, context in .ok(try await workspaces.list(context.caller)) }

        group.on(Endpoints.Workspaces.create) { _, context, body in
            .created(try await workspaces.create(context.caller, body))
        }

        group.on(Endpoints.Workspaces.get) { _, context in
            .ok(try await workspaces.get(context.caller, try context.parameters.require("workspace")))
        }

        group.on(Endpoints.Workspaces.rename) { _, context, body in
            .ok(try await workspaces.rename(context.caller, try context.parameters.require("workspace"), body))
        }

        group.on(Endpoints.Workspaces.delete) { _, context in
            try await workspaces.delete(context.caller, try context.parameters.require("workspace"))
            return .noContent
        }

        group.on(Endpoints.Workspaces.members) { _, context in
            .ok(try await workspaces.members(context.caller, try context.parameters.require("workspace")))
        }
    }
}
