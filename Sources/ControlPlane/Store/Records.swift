import FlareContracts
import Foundation
import GRDB

/// Rows as stored. Column names are the snake_case of the property names.
protocol FlareRecord: Codable, FetchableRecord, PersistableRecord {}

extension FlareRecord {
    static var databaseColumnDecodingStrategy: DatabaseColumnDecodingStrategy { .convertFromSnakeCase }
    static var databaseColumnEncodingStrategy: DatabaseColumnEncodingStrategy { .convertToSnakeCase }
}

struct UserRecord: FlareRecord {
    static let databaseTableName = "users"
    var id: String
    var email: String
    var passwordHash: String
    var createdAt: Date

    var info: UserInfo { UserInfo(id: id, email: email, createdAt: createdAt) }
}

struct AccessTokenRecord: FlareRecord {
    static let databaseTableName = "access_tokens"
    var tokenHash: String
    var userId: String
    var createdAt: Date
    var expiresAt: Date
    var revokedAt: Date?
    /// Nil only for tokens made before sign-ins existed (migration 0006 gives each one).
    var signInId: String?
}

/// One signed-in device: a sign-in and the access and refresh tokens rotated from it.
struct SignInRecord: FlareRecord {
    static let databaseTableName = "sign_ins"
    var id: String
    var userId: String
    var createdAt: Date
    var lastUsedAt: Date
    var address: String
    var client: String
    var revokedAt: Date?
    var revokedReason: String?
}

/// A one-use refresh token of a sign-in (`used_at` set once it has been traded).
struct RefreshTokenRecord: FlareRecord {
    static let databaseTableName = "refresh_tokens"
    var tokenHash: String
    var signInId: String
    var createdAt: Date
    var expiresAt: Date
    var usedAt: Date?
}

struct SSHKeyRecord: FlareRecord {
    static let databaseTableName = "ssh_keys"
    var id: String
    var userId: String
    var name: String
    var publicKey: String
    var fingerprint: String
    var createdAt: Date

    var info: SSHKeyInfo {
        SSHKeyInfo(id: id, name: name, publicKey: publicKey, fingerprint: fingerprint, createdAt: createdAt)
    }
}

struct TemplateRecord: FlareRecord {
    static let databaseTableName = "templates"
    var id: String
    var ownerId: String
    var name: String
    var description: String
    var activeVersionId: String?
    var createdAt: Date
}

struct TemplateVersionRecord: FlareRecord {
    static let databaseTableName = "template_versions"
    var id: String
    var templateId: String
    var version: String
    var manifestJson: String
    var createdAt: Date
    var promotedAt: Date?
    var buildState: TemplateBuildState = .notNeeded
    var buildAttempts: Int = 0
    var buildImage: String?
    var buildImageId: String?
    var buildError: String?

    var build: TemplateBuildInfo {
        TemplateBuildInfo(state: buildState, attempts: buildAttempts,
                          image: buildImage, imageId: buildImageId, error: buildError)
    }

    var manifest: TemplateManifest {
        (try? FlareJSON.decoder().decode(TemplateManifest.self, from: Data(manifestJson.utf8)))
            ?? TemplateManifest(image: "")
    }

    var info: TemplateVersionInfo {
        TemplateVersionInfo(id: id, templateId: templateId, version: version, manifest: manifest,
                            createdAt: createdAt, promotedAt: promotedAt, build: build)
    }
}

struct SessionRecord: FlareRecord {
    static let databaseTableName = "sessions"
    var id: String
    var ownerId: String
    var name: String
    var templateId: String
    var templateVersionId: String
    var state: SessionState
    var stateReason: String
    var hostPrivateKey: String
    var hostPublicKey: String
    var agentTokenHash: String?
    var agentPid: Int32?
    var agentEndpoint: String?
    var lastHeartbeatAt: Date?
    var activityJson: String?
    var createdAt: Date
    var updatedAt: Date
    var latestSnapshotId: String?
}

struct SnapshotRecord: FlareRecord {
    static let databaseTableName = "snapshots"
    var id: String
    var sessionId: String
    var blobDigest: String
    var entryCount: Int
    var totalBytes: Int64
    var archiveBytes: Int64
    var reason: String
    var createdAt: Date
}

struct SessionEventRecord: FlareRecord {
    static let databaseTableName = "session_events"
    var id: Int64?
    var sessionId: String
    var fromState: SessionState?
    var toState: SessionState
    var reason: String
    var createdAt: Date

    var event: SessionEvent {
        SessionEvent(id: id ?? 0, sessionId: sessionId, fromState: fromState, toState: toState, reason: reason,
                     createdAt: createdAt)
    }
}

struct RuntimeTokenRecord: FlareRecord {
    static let databaseTableName = "runtime_tokens"
    var id: String
    var sessionId: String
    var userId: String
    var purpose: String
    var issuedAt: Date
    var expiresAt: Date
    var revokedAt: Date?
    var signInId: String?
}

struct GatewayRecord: FlareRecord {
    static let databaseTableName = "gateways"
    var serviceKey: String
    var name: String
    var registeredAt: Date
}

struct AuditRecord: FlareRecord {
    static let databaseTableName = "audit_log"
    var id: Int64?
    var userId: String?
    var action: String
    var target: String
    var detail: String
    var createdAt: Date
    var workspaceId: String?
    /// `success`, `refused` (a 4xx) or `failed` (a 5xx).
    var outcome: String = "success"
    var requestId: String?
    var address: String?
}

extension SessionState: DatabaseValueConvertible {}

/// Stored as its raw value; a value this version does not know fails the read loudly.
extension TemplateBuildState: DatabaseValueConvertible {}
