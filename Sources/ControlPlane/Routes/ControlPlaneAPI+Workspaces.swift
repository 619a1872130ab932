import FlareContracts
import FlareHTTP
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

        group.on(Endpoints.Workspaces.audit) { request, context in
            let paging = try ListPaging(request)
            let query = request.uri.queryParameters
            var filter = Store.AuditFilter()
            if let since = query["since"] {
                guard let date = try? Date(String(since), strategy: .iso8601) else {
                    throw APIError.badRequest("since must be an ISO 8601 time, like 2026-12-01T09:00:00Z")
                }
                filter.since = date
            }
            filter.actorEmail = query["actor"].map(String.init)
            filter.actionPrefix = query["action"].map(String.init)
            let page = try await workspaces.audit(context.caller, try context.parameters.require("workspace"),
                                                  filter: filter, limit: paging.limit, before: paging.cursor)
            return paging.answer(page.items, next: page.next)
        }

        group.on(Endpoints.Workspaces.members) { _, context in
            .ok(try await workspaces.members(context.caller, try context.parameters.require("workspace")))
        }
    }
}
