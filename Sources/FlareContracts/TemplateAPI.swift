import Foundation

/// What a template version asks of its sessions. Validated field by field by the control plane.
public struct TemplateManifest: Codable, Sendable, Equatable {
    /// Container image; recorded by the `host` runtime but not used by it.
    public var image: String
    /// Absolute, normalized paths inside the session that survive sleep (at most 8).
    public var persistedPaths: [String]
    /// Seconds without SSH or terminal activity before the session sleeps.
    public var idleTimeoutSeconds: Int
    /// Seconds a sleeping session is kept before it is purged.
    public var sleepTtlSeconds: Int
    /// Extra environment for every shell and command.
    public var env: [String: String]

    public init(
        image: String, persistedPaths: [String] = [], idleTimeoutSeconds: Int = 1800,
        sleepTtlSeconds: Int = 7 * 86400, env: [String: String] = [:]
    ) {
        self.image = image
        self.persistedPaths = persistedPaths
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.sleepTtlSeconds = sleepTtlSeconds
        self.env = env
    }
}

/// `POST /api/templates`.
public struct TemplateCreateRequest: Codable, Sendable {
    public var name: String
    public var description: String?

    public init(name: String, description: String? = nil) {
        self.name = name
        self.description = description
    }
}

/// `POST /api/templates/{template}/versions`. The manifest is checked by the server, so a bad
/// field gets a message naming it rather than a generic decoding error.
public struct TemplateVersionCreateRequest: Codable, Sendable {
    public var version: String
    public var manifest: TemplateManifest

    public init(version: String, manifest: TemplateManifest) {
        self.version = version
        self.manifest = manifest
    }
}

public struct TemplateVersionInfo: Codable, Sendable, Equatable {
    public var id: String
    public var templateId: String
    public var version: String
    public var manifest: TemplateManifest
    public var createdAt: Date
    public var promotedAt: Date?

    public init(id: String, templateId: String, version: String, manifest: TemplateManifest, createdAt: Date,
                promotedAt: Date?) {
        self.id = id
        self.templateId = templateId
        self.version = version
        self.manifest = manifest
        self.createdAt = createdAt
        self.promotedAt = promotedAt
    }
}

public struct TemplateInfo: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var description: String
    /// The promoted version, which every new session uses.
    public var activeVersion: TemplateVersionInfo?
    public var versions: [TemplateVersionInfo]
    public var createdAt: Date

    public init(id: String, name: String, description: String, activeVersion: TemplateVersionInfo?,
                versions: [TemplateVersionInfo], createdAt: Date) {
        self.id = id
        self.name = name
        self.description = description
        self.activeVersion = activeVersion
        self.versions = versions
        self.createdAt = createdAt
    }
}
