import FlareContracts
import Foundation
import Hummingbird

/// Session routes: adapters over ``SessionService``.
extension ControlPlaneAPI {
    func addSessionRoutes(to group: RouterGroup<UserRequestContext>) {
        group.on(Endpoints.Sessions.list) { request, context in
            let paging = try ListPaging(request)
            let page = try await sessions.list(context.caller, limit: paging.limit, after: paging.cursor)
            return paging.answer(json: page.json, next: page.next)
        }

        group.on(Endpoints.Sessions.create) { _, context, body in
            .created(try await sessions.create(context.caller, body))
        }

        group.on(Endpoints.Sessions.get) { _, context in
            .written(try await sessions.get(context.caller, try context.parameters.require("session")))
        }

        group.on(Endpoints.Sessions.events) { request, context in
            let paging = try ListPaging(request)
            let page = try await sessions.events(context.caller, try context.parameters.require("session"),
                                                 limit: paging.limit, after: paging.cursor)
            return paging.answer(page.items, next: page.next)
        }

        group.on(Endpoints.Sessions.start) { _, context in
            .ok(try await sessions.start(context.caller, try context.parameters.require("session")))
        }

        group.on(Endpoints.Sessions.stop) { _, context in
            .ok(try await sessions.stop(context.caller, try context.parameters.require("session")))
        }

        group.on(Endpoints.Sessions.delete) { _, context in
            try await sessions.delete(context.caller, try context.parameters.require("session"))
            return .noContent
        }

        // The agent's recent log: what a user looks at when a session fails.
        group.on(Endpoints.Sessions.logs) { request, context -> Response in
            let lines = request.uri.queryParameters["lines"].flatMap { Int($0) } ?? 200
            let text = try await sessions.logs(context.caller, try context.parameters.require("session"), lines: lines)
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }

        group.on(Endpoints.Sessions.revokeRuntimeTokens) { _, context in
            .ok(try await sessions.revokeRuntimeTokens(context.caller, try context.parameters.require("session")))
        }

        group.on(Endpoints.Sessions.runtimeToken) { _, context, body in
            let actor = context.caller
            try rateLimits.tokensByAccount.take(actor.userId).enforce("runtime tokens for this account")
            return .created(try await sessions.issueRuntimeToken(actor, try context.parameters.require("session"),
                                                                 purpose: body.purpose))
        }
    }
}
