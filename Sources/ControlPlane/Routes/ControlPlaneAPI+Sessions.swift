import FlareContracts
import FlareHTTP
import Foundation
import Hummingbird

extension ControlPlaneAPI {
    func addSessionRoutes(to group: RouterGroup<FlareRequestContext>) {
        group.get("/sessions") { request, context -> EditedResponse<WrittenJSON> in
            let user = try context.requireUser()
            let paging = try ListPaging(request)
            let page = try await paging.fetch { try await store.sessionListingsJSON(ownerId: user.id, limit: $0, after: $1) }
            return paging.response(json: page.json, next: page.next)
        }

        group.post("/sessions") { request, context -> EditedResponse<SessionInfo> in
            let user = try context.requireUser()
            let body = try await request.decodeJSON(SessionCreateRequest.self, context: context)
            try ResourceName.validate(body.name, what: "session name")
            guard let template = try await store.template(ownerId: user.id, reference: body.template) else {
                throw APIError.notFound("template \(body.template)")
            }
            guard let versionId = template.activeVersionId else {
                throw APIError.conflict(
                    "template \(template.name) has no promoted version; run `flare template promote \(template.name) VERSION`",
                    code: "template_not_promoted")
            }
            let id = FlareID.make("ses")
            let hostKey = OpenSSHKeyPair.generateEd25519(comment: "flare-\(id)")
            let now = Date()
            let session = SessionRecord(
                id: id, ownerId: user.id, name: body.name, templateId: template.id, templateVersionId: versionId,
                state: .created, stateReason: "created by \(user.email)", hostPrivateKey: hostKey.privateKeyText,
                hostPublicKey: hostKey.publicKeyLine.split(separator: " ").prefix(2).joined(separator: " "),
                agentTokenHash: nil, agentPid: nil, agentEndpoint: nil, lastHeartbeatAt: nil, activityJson: nil,
                createdAt: now, updatedAt: now, latestSnapshotId: nil)
            do {
                try await store.insertSession(session, reason: session.stateReason)
            } catch StoreError.duplicate {
                throw APIError.conflict("a session named \(body.name) already exists", code: "session_exists")
            }
            try await store.audit(userId: user.id, action: "session.create", target: id, detail: body.name)
            return EditedResponse(status: .created, response: try await sessionInfo(session))
        }

        group.get("/sessions/{session}") { _, context -> WrittenJSON in
            let user = try context.requireUser()
            let reference = try context.parameters.require("session")
            guard let listing = try await store.sessionListing(ownerId: user.id, reference: reference) else {
                throw APIError.notFound("session \(reference)")
            }
            return WrittenJSON(Self.sessionInfo(listing))
        }

        group.get("/sessions/{session}/events") { request, context -> EditedResponse<[SessionEvent]> in
            let sessionId = try await session(context).id
            let paging = try ListPaging(request)
            let page = try await paging.fetch { try await store.events(sessionId: sessionId, limit: $0, after: $1) }
            return paging.response(page.items.map(\.event), next: page.next)
        }

        group.post("/sessions/{session}/start") { _, context -> SessionInfo in
            let user = try context.requireUser()
            let session = try await session(context)
            let started = try await lifecycle.start(session.id, reason: "start requested by \(user.email)")
            try await store.audit(userId: user.id, action: "session.start", target: session.id)
            return try await sessionInfo(started)
        }

        group.post("/sessions/{session}/stop") { _, context -> SessionInfo in
            let user = try context.requireUser()
            let session = try await session(context)
            revocations.publish(Revocation(.session, session.id, reason: "session \(session.name) is stopping"))
            let stopped = try await lifecycle.stop(session.id, reason: "stop requested by \(user.email)")
            try await store.audit(userId: user.id, action: "session.stop", target: session.id)
            return try await sessionInfo(stopped)
        }

        group.delete("/sessions/{session}") { _, context -> HTTPResponse.Status in
            let user = try context.requireUser()
            let session = try await session(context)
            _ = try await store.revokeRuntimeTokens(sessionId: session.id, at: Date())
            revocations.publish(Revocation(.session, session.id, reason: "session \(session.name) was deleted"))
            try await lifecycle.delete(session.id, reason: "deleted by \(user.email)")
            try await store.audit(userId: user.id, action: "session.delete", target: session.id)
            return .noContent
        }

        // The agent's recent log: what a user looks at when a session fails.
        group.get("/sessions/{session}/logs") { request, context -> String in
            let session = try await session(context)
            let lines = request.uri.queryParameters["lines"].flatMap { Int($0) }.map { min(max($0, 1), 10_000) } ?? 200
            return try await lifecycle.driver.logs(sessionId: session.id, lines: lines)
        }

        group.post("/sessions/{session}/runtime-tokens/revoke") { _, context -> RevokeResponse in
            let user = try context.requireUser()
            let session = try await session(context)
            let revoked = try await store.revokeRuntimeTokens(sessionId: session.id, at: Date())
            let closed = revocations.publish(Revocation(
                .session, session.id, reason: "the runtime tokens of \(session.name) were revoked"))
            try await store.audit(userId: user.id, action: "runtime_token.revoke_all", target: session.id,
                                  detail: "\(revoked) tokens, \(closed) connections")
            return RevokeResponse(revokedTokens: revoked, closedConnections: closed)
        }

        group.post("/sessions/{session}/runtime-token") { request, context -> EditedResponse<RuntimeTokenResponse> in
            let user = try context.requireUser()
            try rateLimits.tokensByAccount.take(user.id).enforce("runtime tokens for this account")
            let session = try await session(context)
            let body = try await request.decodeJSON(RuntimeTokenRequest.self, context: context)
            let now = Date()
            let claims = RuntimeTokenClaims(id: FlareID.make("rt"), sessionId: session.id, userId: user.id,
                                            purpose: body.purpose, issuedAt: now,
                                            expiresAt: now.addingTimeInterval(runtimeTokenLifetime))
            try await store.insertRuntimeToken(RuntimeTokenRecord(
                id: claims.id, sessionId: session.id, userId: user.id, purpose: body.purpose.rawValue,
                issuedAt: now, expiresAt: claims.expiresAt, revokedAt: nil))
            let token = try RuntimeToken.sign(claims, with: signingKey)
            try await store.audit(userId: user.id, action: "runtime_token.issue", target: session.id,
                                  detail: "\(body.purpose.rawValue) \(claims.id)")
            return EditedResponse(status: .created, response: RuntimeTokenResponse(
                token: token, sessionId: session.id, purpose: body.purpose, expiresAt: claims.expiresAt))
        }
    }

    /// The caller's live session named or numbered in the path; another user's is a 404.
    func session(_ context: FlareRequestContext) async throws -> SessionRecord {
        let user = try context.requireUser()
        let reference = try context.parameters.require("session")
        guard let session = try await store.session(ownerId: user.id, reference: reference) else {
            throw APIError.notFound("session \(reference)")
        }
        return session
    }

    /// `session` as users see it, with its template's name and version (one query).
    func sessionInfo(_ session: SessionRecord) async throws -> SessionInfo {
        let label = try await store.templateLabel(templateId: session.templateId, versionId: session.templateVersionId)
        return Self.sessionInfo(SessionListing(session, templateName: label.name, templateVersion: label.version))
    }

    static func sessionInfo(_ session: SessionListing) -> SessionInfo {
        SessionInfo(
            id: session.id, name: session.name, templateId: session.templateId,
            templateName: session.templateName, templateVersion: session.templateVersion, state: session.state,
            stateReason: session.stateReason, hostPublicKey: session.hostPublicKey,
            lastHeartbeatAt: session.lastHeartbeatAt,
            activity: session.state == .running ? session.activityJson.flatMap {
                try? FlareJSON.decoder().decode(AgentHeartbeat.self, from: Data($0.utf8))
            } : nil,
            createdAt: session.createdAt, updatedAt: session.updatedAt)
    }
}
