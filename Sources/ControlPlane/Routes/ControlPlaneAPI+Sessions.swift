import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird

/// Session routes: adapters over ``SessionService``.
extension ControlPlaneAPI {
    var sessions: SessionService {
        SessionService(store: store, lifecycle: lifecycle, revocations: revocations, signingKey: signingKey,
                       runtimeTokenLifetime: runtimeTokenLifetime)
    }

    func addSessionRoutes(to group: RouterGroup<FlareRequestContext>) {
        group.get("/sessions") { request, context -> EditedResponse<WrittenJSON> in
            let paging = try ListPaging(request)
            let page = try await sessions.list(try context.actor(), limit: paging.limit, after: paging.cursor)
            return paging.response(json: page.json, next: page.next)
        }

        group.post("/sessions") { request, context -> EditedResponse<SessionInfo> in
            let body = try await request.decodeJSON(SessionCreateRequest.self, context: context)
            return EditedResponse(status: .created, response: try await sessions.create(try context.actor(), body))
        }

        group.get("/sessions/{session}") { _, context -> WrittenJSON in
            WrittenJSON(try await sessions.get(try context.actor(), try context.parameters.require("session")))
        }

        group.get("/sessions/{session}/events") { request, context -> EditedResponse<[SessionEvent]> in
            let paging = try ListPaging(request)
            let page = try await sessions.events(try context.actor(), try context.parameters.require("session"),
                                                 limit: paging.limit, after: paging.cursor)
            return paging.response(page.items, next: page.next)
        }

        group.post("/sessions/{session}/start") { _, context -> SessionInfo in
            try await sessions.start(try context.actor(), try context.parameters.require("session"))
        }

        group.post("/sessions/{session}/stop") { _, context -> SessionInfo in
            try await sessions.stop(try context.actor(), try context.parameters.require("session"))
        }

        group.delete("/sessions/{session}") { _, context -> HTTPResponse.Status in
            try await sessions.delete(try context.actor(), try context.parameters.require("session"))
            return .noContent
        }

        // The agent's recent log: what a user looks at when a session fails.
        group.get("/sessions/{session}/logs") { request, context -> String in
            let lines = request.uri.queryParameters["lines"].flatMap { Int($0) } ?? 200
            return try await sessions.logs(try context.actor(), try context.parameters.require("session"), lines: lines)
        }

        group.post("/sessions/{session}/runtime-tokens/revoke") { _, context -> RevokeResponse in
            try await sessions.revokeRuntimeTokens(try context.actor(), try context.parameters.require("session"))
        }

        group.post("/sessions/{session}/runtime-token") { request, context -> EditedResponse<RuntimeTokenResponse> in
            let actor = try context.actor()
            try rateLimits.tokensByAccount.take(actor.userId).enforce("runtime tokens for this account")
            let body = try await request.decodeJSON(RuntimeTokenRequest.self, context: context)
            let issued = try await sessions.issueRuntimeToken(actor, try context.parameters.require("session"),
                                                              purpose: body.purpose)
            return EditedResponse(status: .created, response: issued)
        }
    }

    /// The caller's live session named or numbered in the path, once the policy allows `action`
    /// on it; another user's is a 404.
    func session(_ context: FlareRequestContext, for action: Action) async throws -> SessionRecord {
        try await sessions.authorized(try context.actor(), action, try context.parameters.require("session"))
    }
}
