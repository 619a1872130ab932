import Foundation

/// `POST /agent/v1/register`: an agent announcing itself (authenticated with its agent token).
public struct AgentRegisterRequest: Codable, Sendable {
    public var agentVersion: String
    public var pid: Int32
    /// Where the agent serves SSH, e.g. `unix:/path/ssh.sock`.
    public var sshEndpoint: String

    public init(agentVersion: String, pid: Int32, sshEndpoint: String) {
        self.agentVersion = agentVersion
        self.pid = pid
        self.sshEndpoint = sshEndpoint
    }
}

/// `GET /agent/v1/config`: everything an agent needs to serve its session.
public struct AgentConfig: Codable, Sendable, Equatable {
    public var sessionId: String
    /// The session's private host key in OpenSSH format.
    public var hostPrivateKey: String
    /// `authorized_keys` lines of the users allowed in.
    public var authorizedKeys: [String]
    /// The template's environment.
    public var env: [String: String]
    public var persistedPaths: [String]
    public var heartbeatIntervalSeconds: Int
    /// The snapshot to restore before serving (the session's latest good one), if any.
    public var restoreSnapshot: SnapshotReference?

    public init(sessionId: String, hostPrivateKey: String, authorizedKeys: [String], env: [String: String],
                persistedPaths: [String], heartbeatIntervalSeconds: Int, restoreSnapshot: SnapshotReference? = nil) {
        self.sessionId = sessionId
        self.hostPrivateKey = hostPrivateKey
        self.authorizedKeys = authorizedKeys
        self.env = env
        self.persistedPaths = persistedPaths
        self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
        self.restoreSnapshot = restoreSnapshot
    }
}

/// Which stored snapshot to fetch, and what its archive must hash to.
public struct SnapshotReference: Codable, Sendable, Equatable {
    public var id: String
    public var sha256: String
    public var archiveBytes: Int64

    public init(id: String, sha256: String, archiveBytes: Int64) {
        self.id = id
        self.sha256 = sha256
        self.archiveBytes = archiveBytes
    }
}

/// The answer to a snapshot upload.
public struct SnapshotInfo: Codable, Sendable, Equatable {
    public var id: String
    public var sessionId: String
    public var sha256: String
    public var entryCount: Int
    public var totalBytes: Int64
    public var archiveBytes: Int64
    public var reason: String
    public var createdAt: Date
    /// True for the session's latest good snapshot (the one its next wake restores).
    public var latest: Bool?

    public init(id: String, sessionId: String, sha256: String, entryCount: Int, totalBytes: Int64,
                archiveBytes: Int64, reason: String, createdAt: Date, latest: Bool? = nil) {
        self.id = id
        self.sessionId = sessionId
        self.sha256 = sha256
        self.entryCount = entryCount
        self.totalBytes = totalBytes
        self.archiveBytes = archiveBytes
        self.reason = reason
        self.createdAt = createdAt
        self.latest = latest
    }
}

/// `POST /agent/v1/ready` and `/agent/v1/heartbeat`: the agent's activity figures.
public struct AgentHeartbeat: Codable, Sendable, Equatable {
    public var openConnections: Int
    public var openChannels: Int
    public var bytesIn: UInt64
    public var bytesOut: UInt64
    public var lastInputAt: Date?
    /// When a connection last opened or closed.
    public var lastConnectionAt: Date?

    public init(openConnections: Int = 0, openChannels: Int = 0, bytesIn: UInt64 = 0, bytesOut: UInt64 = 0,
                lastInputAt: Date? = nil, lastConnectionAt: Date? = nil) {
        self.openConnections = openConnections
        self.openChannels = openChannels
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.lastInputAt = lastInputAt
        self.lastConnectionAt = lastConnectionAt
    }
}

/// `POST /agent/v1/failed`: the agent cannot serve its session, and says why.
public struct AgentFailure: Codable, Sendable {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }
}

/// Work the control plane asks a running agent to do (`GET /agent/v1/commands`, long-polled).
public struct AgentCommand: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Take a snapshot now and upload it.
        case snapshot
        /// Download and restore `snapshot` into the persisted paths, live.
        case restore
    }

    public var id: String
    public var kind: Kind
    public var snapshot: SnapshotReference?

    public init(id: String, kind: Kind, snapshot: SnapshotReference? = nil) {
        self.id = id
        self.kind = kind
        self.snapshot = snapshot
    }
}

/// `POST /agent/v1/commands/{id}/result`.
public struct AgentCommandResult: Codable, Sendable, Equatable {
    public var succeeded: Bool
    public var message: String
    /// The snapshot a `snapshot` command stored.
    public var snapshotId: String?
    /// The HTTP status the control plane gave the agent's upload, when that is what failed.
    public var status: Int?

    public init(succeeded: Bool, message: String, snapshotId: String? = nil, status: Int? = nil) {
        self.succeeded = succeeded
        self.message = message
        self.snapshotId = snapshotId
        self.status = status
    }
}
