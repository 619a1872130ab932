import Crypto
import FlareContracts
import Foundation

/// What users do with sessions: list, create, read, start, stop, delete, read logs and events,
/// issue and revoke runtime tokens. Every call names its actor and passes through ``Policy``;
/// refusals are ``ServiceError``s. The routes only decode, call one of these and encode.
struct SessionService: Sendable {
    let store: Store
    let lifecycle: SessionLifecycle
    /// Cuts live connections (here and in standalone gateways) when access is taken away.
    let revocations: RevocationHub
    let signingKey: Curve25519.Signing.PrivateKey
    /// How long runtime tokens live.
    let runtimeTokenLifetime: TimeInterval

    /// One page of the actor's sessions, already written as the API's JSON.
    func list(_ actor: Caller, limit: Int, after cursor: String?) async throws -> JSONPage {
        try Policy.authorize(actor, .sessionList, role: Policy.role(of: actor, inAccount: actor.userId), createdBy: nil)
        return try await Paging.fetch(cursor: cursor) {
            try await store.sessionListingsJSON(ownerId: actor.userId, limit: limit, after: cursor)
        }
    }

    func create(_ actor: Caller, _ request: SessionCreateRequest) async throws -> SessionInfo {
        try Policy.authorize(actor, .sessionCreate, role: Policy.role(of: actor, inAccount: actor.userId), createdBy: nil)
        try ResourceName.validate(request.name, what: "session name")
        guard let template = try await store.template(ownerId: actor.userId, reference: request.template) else {
            throw ServiceError.notFound("template \(request.template)")
        }
        guard let versionId = template.activeVersionId else {
            throw ServiceError.conflict(
                "template \(template.name) has no promoted version; run `flare template promote \(template.name) VERSION`",
                code: "template_not_promoted")
        }
        let id = FlareID.make("ses")
        let hostKey = OpenSSHKeyPair.generateEd25519(comment: "flare-\(id)")
        let now = Date()
        let session = SessionRecord(
            id: id, ownerId: actor.userId, name: request.name, templateId: template.id, templateVersionId: versionId,
            state: .created, stateReason: "created by \(actor.email)", hostPrivateKey: hostKey.privateKeyText,
            hostPublicKey: hostKey.publicKeyLine.split(separator: " ").prefix(2).joined(separator: " "),
            agentTokenHash: nil, agentPid: nil, agentEndpoint: nil, lastHeartbeatAt: nil, activityJson: nil,
            createdAt: now, updatedAt: now, latestSnapshotId: nil)
        do {
            try await store.insertSession(session, reason: session.stateReason)
        } catch StoreError.duplicate {
            throw ServiceError.conflict("a session named \(request.name) already exists", code: "session_exists")
        }
        try await store.audit(actor, action: "session.create", target: id, detail: request.name)
        return try await info(session)
    }

    func get(_ actor: Caller, _ reference: String) async throws -> SessionInfo {
        guard let listing = try await store.sessionListing(ownerId: actor.userId, reference: reference) else {
            throw ServiceError.notFound("session \(reference)")
        }
        try Policy.authorize(actor, .sessionRead, role: Policy.role(of: actor, inAccount: actor.userId),
                             createdBy: actor.userId)
        return Self.info(listing)
    }

    func events(_ actor: Caller, _ reference: String, limit: Int, after cursor: String?) async throws
        -> Page<SessionEvent>
    {
        let session = try await authorized(actor, .sessionRead, reference)
        let page = try await Paging.fetch(cursor: cursor) { try await store.events(sessionId: session.id, limit: limit, after: cursor) }
        return Page(items: page.items.map(\.event), next: page.next)
    }

    func start(_ actor: Caller, _ reference: String) async throws -> SessionInfo {
        let session = try await authorized(actor, .sessionStart, reference)
        let started = try await lifecycle.start(session.id, reason: "start requested by \(actor.email)")
        try await store.audit(actor, action: "session.start", target: session.id)
        return try await info(started)
    }

    func stop(_ actor: Caller, _ reference: String) async throws -> SessionInfo {
        let session = try await authorized(actor, .sessionStop, reference)
        revocations.publish(Revocation(.session, session.id, reason: "session \(session.name) is stopping"))
        let stopped = try await lifecycle.stop(session.id, reason: "stop requested by \(actor.email)")
        try await store.audit(actor, action: "session.stop", target: session.id)
        return try await info(stopped)
    }

    func delete(_ actor: Caller, _ reference: String) async throws {
        let session = try await authorized(actor, .sessionDelete, reference)
        _ = try await store.revokeRuntimeTokens(sessionId: session.id, at: Date())
        revocations.publish(Revocation(.session, session.id, reason: "session \(session.name) was deleted"))
        try await lifecycle.delete(session.id, reason: "deleted by \(actor.email)")
        try await store.audit(actor, action: "session.delete", target: session.id)
    }

    /// The agent's recent log (what a user looks at when a session fails), `lines` at most.
    func logs(_ actor: Caller, _ reference: String, lines: Int) async throws -> String {
        let session = try await authorized(actor, .sessionLogs, reference)
        return try await lifecycle.driver.logs(sessionId: session.id, lines: min(max(lines, 1), 10_000))
    }

    func revokeRuntimeTokens(_ actor: Caller, _ reference: String) async throws -> RevokeResponse {
        let session = try await authorized(actor, .sessionRevokeRuntimeTokens, reference)
        let revoked = try await store.revokeRuntimeTokens(sessionId: session.id, at: Date())
        let closed = revocations.publish(Revocation(
            .session, session.id, reason: "the runtime tokens of \(session.name) were revoked"))
        try await store.audit(actor, action: "runtime_token.revoke_all", target: session.id,
                              detail: "\(revoked) tokens, \(closed) connections")
        return RevokeResponse(revokedTokens: revoked, closedConnections: closed)
    }

    func issueRuntimeToken(_ actor: Caller, _ reference: String, purpose: RuntimeTokenPurpose) async throws
        -> RuntimeTokenResponse
    {
        let session = try await authorized(actor, .sessionIssueRuntimeToken, reference)
        let now = Date()
        let claims = RuntimeTokenClaims(id: FlareID.make("rt"), sessionId: session.id, userId: actor.userId,
                                        purpose: purpose, issuedAt: now,
                                        expiresAt: now.addingTimeInterval(runtimeTokenLifetime), signInId: actor.signInId)
        try await store.insertRuntimeToken(RuntimeTokenRecord(
            id: claims.id, sessionId: session.id, userId: actor.userId, purpose: purpose.rawValue,
            issuedAt: now, expiresAt: claims.expiresAt, revokedAt: nil, signInId: actor.signInId))
        let token = try RuntimeToken.sign(claims, with: signingKey)
        try await store.audit(actor, action: "runtime_token.issue", target: session.id,
                              detail: "\(purpose.rawValue) \(claims.id)")
        return RuntimeTokenResponse(token: token, sessionId: session.id, purpose: purpose, expiresAt: claims.expiresAt)
    }

    /// The live session `reference` names (or numbers) once the policy allows `action` on it;
    /// one the actor has no role on is not found.
    func authorized(_ actor: Caller, _ action: Action, _ reference: String) async throws -> SessionRecord {
        guard let session = try await store.session(ownerId: actor.userId, reference: reference) else {
            throw ServiceError.notFound("session \(reference)")
        }
        try Policy.authorize(actor, action, role: Policy.role(of: actor, inAccount: session.ownerId),
                             createdBy: session.ownerId)
        return session
    }

    /// `session` as users see it, with its template's name and version (one query).
    func info(_ session: SessionRecord) async throws -> SessionInfo {
        let label = try await store.templateLabel(templateId: session.templateId, versionId: session.templateVersionId)
        return Self.info(SessionListing(session, templateName: label.name, templateVersion: label.version))
    }

    static func info(_ session: SessionListing) -> SessionInfo {
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
