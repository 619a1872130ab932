import FlareContracts
import Foundation
import Hummingbird

/// Session routes: adapters over ``SessionService``.
extension ControlPlaneAPI {
    func addSessionRoutes(to group: RouterGroup<UserRequestContext>) {
        group.get("/sessions") { request, context -> EditedResponse<WrittenJSON> in
            let paging = try ListPaging(request)
            let page = try await sessions.list(context.caller, limit: paging.limit, after: paging.cursor)
            return paging.response(json: page.json, next: page.next)
        }

        group.post("/sessions") { request, context -> EditedResponse<SessionInfo> in
            let body = try await request.decodeJSON(SessionCreateRequest.self, context: context)
            return EditedResponse(status: .created, response: try await sessions.create(context.caller, body))
        }

        group.get("/sessions/{session}") { _, context -> WrittenJSON in
            WrittenJSON(try await sessions.get(context.caller, try context.parameters.require("session")))
        }

        group.get("/sessions/{session}/events") { request, context -> EditedResponse<[SessionEvent]> in
            let paging = try ListPaging(request)
            let page = try await sessions.events(context.caller, try context.parameters.require("session"),
                                                 limit: paging.limit, after: paging.cursor)
            return paging.response(page.items, next: page.next)
        }

        group.post("/sessions/{session}/start") { _, context -> SessionInfo in
            try await sessions.start(context.caller, try context.parameters.require("session"))
        }

        group.post("/sessions/{session}/stop") { _, context -> SessionInfo in
            try await sessions.stop(context.caller, try context.parameters.require("session"))
        }

        group.delete("/sessions/{session}") { _, context -> HTTPResponse.Status in
            try await sessions.delete(context.caller, try context.parameters.require("session"))
            return .noContent
        }

        // The agent's recent log: what a user looks at when a session fails.
        group.get("/sessions/{session}/logs") { request, context -> String in
            let lines = request.uri.queryParameters["lines"].flatMap { Int($0) } ?? 200
            return try await sessions.logs(context.caller, try context.parameters.require("session"), lines: lines)
        }

        group.post("/sessions/{session}/runtime-tokens/revoke") { _, context -> RevokeResponse in
            try await sessions.revokeRuntimeTokens(context.caller, try context.parameters.require("session"))
        }

        group.post("/sessions/{session}/runtime-token") { request, context -> EditedResponse<RuntimeTokenResponse> in
            let actor = context.caller
            try rateLimits.tokensByAccount.take(actor.userId).enforce("runtime tokens for this account")
            let body = try await request.decodeJSON(RuntimeTokenRequest.self, context: context)
            let issued = try await sessions.issueRuntimeToken(actor, try context.parameters.require("session"),
                                                              purpose: body.purpose)
            return EditedResponse(status: .created, response: issued)
        }
    }
}
