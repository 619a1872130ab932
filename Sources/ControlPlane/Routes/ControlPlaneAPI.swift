import Crypto
import FlareContracts
import FlareHTTP
import Foundation
import Gateway
import Hummingbird

/// The control plane's HTTP API. Each area's routes live in a `ControlPlaneAPI+Area.swift` file;
/// they decode, call one of the services (`Services/`) and encode. A route group has its own
/// context type, whose caller is never optional.
struct ControlPlaneAPI: Sendable {
    let store: Store
    let lifecycle: SessionLifecycle
    let hasher: PasswordHasher
    let signingKey: Curve25519.Signing.PrivateKey
    /// How often agents report their activity.
    let agentHeartbeatSeconds: Int
    /// Where snapshot archives are kept.
    let blobs: FileBlobStore
    /// Snapshot size, count and storage limits.
    let snapshotLimits: SnapshotLimits
    /// Commands to running agents.
    let commands: AgentCommandBroker
    /// Cuts live connections (here and in standalone gateways) when access is taken away.
    let revocations: RevocationHub
    /// Template versions are built into images (docker runtime); where their logs are.
    let builds: TemplateBuilds?
    /// The operator's ceilings on what a template's `resources` may ask for.
    let resourceCeilings: TemplateResources
    /// Registration closes after the first account.
    let singleUser: Bool
    /// How long access tokens live (a refresh gets the next).
    let accessTokenLifetime: TimeInterval
    /// How long a refresh token lives unused.
    let refreshTokenLifetime: TimeInterval = 30 * 86400
    /// How long a device's sign-in codes live.
    let deviceCodeLifetime: TimeInterval
    /// How long runtime tokens live.
    let runtimeTokenLifetime: TimeInterval = 5 * 60
    /// Snapshot bytes promised to uploads in flight.
    let storageReservations = StorageReservations()
    /// One bundle is kept per version: uploads for the same version take turns at keeping theirs.
    let bundleUploads = KeyedMutex()
    /// Sign-up, sign-in and token issuance limits (429 past them).
    var rateLimits = AuthRateLimits()

    func addRoutes(to router: Router<FlareRequestContext>) {
        router.on(Endpoints.health) { _, _ in .ok(HealthResponse(status: "ok", version: FlareVersion.current)) }
        addAuthRoutes(to: router)
        // Groups without a path prefix: each route's whole path comes from its endpoint.
        let authenticated = router.group().add(middleware: UserAuthMiddleware(store: store))
            .add(middleware: RefusedChangeAudit(store: store))
            .group(context: UserRequestContext.self)
        addAccountRoutes(to: authenticated)
        addWorkspaceRoutes(to: authenticated)
        addTemplateRoutes(to: authenticated)
        addSessionRoutes(to: authenticated)
        addUserSnapshotRoutes(to: authenticated)
    }

    /// The router of one session's agent channel: that session's agent routes and nothing else.
    func makeAgentRouter(boundTo sessionId: String) -> Router<FlareRequestContext> {
        let router = Router(context: FlareRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        let agent = router.group().add(middleware: AgentAuthMiddleware(store: store, boundSession: sessionId))
            .group(context: AgentRequestContext.self)
        addAgentRoutes(to: agent)
        addAgentSnapshotRoutes(to: agent)
        return router
    }

    // The services the routes call; each is a few references, made per request.

    var accounts: AccountService {
        AccountService(store: store, hasher: hasher, revocations: revocations, singleUser: singleUser,
                       accessTokenLifetime: accessTokenLifetime, refreshTokenLifetime: refreshTokenLifetime,
                       deviceCodeLifetime: deviceCodeLifetime)
    }

    var workspaces: WorkspaceService { WorkspaceService(store: store) }

    var sessions: SessionService {
        SessionService(store: store, lifecycle: lifecycle, revocations: revocations, signingKey: signingKey,
                       runtimeTokenLifetime: runtimeTokenLifetime)
    }

    var templates: TemplateService {
        TemplateService(store: store, builds: builds, resourceCeilings: resourceCeilings)
    }

    var templateBuilds: BuildService {
        BuildService(store: store, templates: templates, builds: builds, bundleUploads: bundleUploads)
    }

    var snapshots: SnapshotService {
        SnapshotService(store: store, sessions: sessions, blobs: blobs, commands: commands,
                        limits: snapshotLimits, reservations: storageReservations)
    }

    var agents: AgentService {
        AgentService(store: store, lifecycle: lifecycle, commands: commands, heartbeatSeconds: agentHeartbeatSeconds)
    }
}

/// The version every binary reports.
public enum FlareVersion {
    public static let current = "0.1.0"
}

extension Request {
    /// Decodes a JSON body, with a message that says what is wrong when it is not valid.
    func decodeJSON<T: Decodable>(_ type: T.Type, context: some RequestContext, limit: Int = 64 * 1024)
        async throws -> T
    {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, code: "too_large", "the request body is larger than \(limit) bytes")
        }
        do {
            return try FlareJSON.decoder().decode(T.self, from: Data(buffer: buffer))
        } catch let DecodingError.keyNotFound(key, _) {
            throw APIError.badRequest("\(key.stringValue) is required")
        } catch let DecodingError.typeMismatch(_, context) {
            throw APIError.badRequest("\(Self.path(context.codingPath)) has the wrong type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw APIError.badRequest("\(Self.path(context.codingPath)) must not be null")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            throw APIError.badRequest("\(Self.path(context.codingPath)) is not valid")
        } catch {
            throw APIError.badRequest("the request body is not valid JSON")
        }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: ["."])
    }
}
