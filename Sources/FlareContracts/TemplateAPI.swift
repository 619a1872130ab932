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
    /// Debian packages the docker runtime's build installs.
    public var packages: [String]
    /// A shell script the build runs as root after the packages.
    public var setup: String?
    /// Limits for each session's container (docker runtime).
    public var resources: TemplateResources?
    /// Files from the version's uploaded bundle copied into the image (`flare template upload --bundle DIR`).
    public var files: [TemplateFile]

    public init(
        image: String, persistedPaths: [String] = [], idleTimeoutSeconds: Int = 1800,
        sleepTtlSeconds: Int = 7 * 86400, env: [String: String] = [:], packages: [String] = [], setup: String? = nil,
        resources: TemplateResources? = nil, files: [TemplateFile] = []
    ) {
        self.image = image
        self.persistedPaths = persistedPaths
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.sleepTtlSeconds = sleepTtlSeconds
        self.env = env
        self.packages = packages
        self.setup = setup
        self.resources = resources
        self.files = files
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        image = try container.decode(String.self, forKey: .image)
        persistedPaths = try container.decodeIfPresent([String].self, forKey: .persistedPaths) ?? []
        idleTimeoutSeconds = try container.decodeIfPresent(Int.self, forKey: .idleTimeoutSeconds) ?? 1800
        sleepTtlSeconds = try container.decodeIfPresent(Int.self, forKey: .sleepTtlSeconds) ?? 7 * 86400
        env = try container.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        packages = try container.decodeIfPresent([String].self, forKey: .packages) ?? []
        setup = try container.decodeIfPresent(String.self, forKey: .setup)
        resources = try container.decodeIfPresent(TemplateResources.self, forKey: .resources)
        files = try container.decodeIfPresent([TemplateFile].self, forKey: .files) ?? []
    }
}

/// A file or directory of the bundle (`from`, relative) and where the image gets it (`to`, absolute).
public struct TemplateFile: Codable, Sendable, Equatable {
    public var from: String
    public var to: String

    public init(from: String, to: String) {
        self.from = from
        self.to = to
    }
}

/// A session container's limits.
public struct TemplateResources: Codable, Sendable, Equatable {
    public var memoryMB: Int?
    public var cpus: Double?
    public var pids: Int?

    public init(memoryMB: Int? = nil, cpus: Double? = nil, pids: Int? = nil) {
        self.memoryMB = memoryMB
        self.cpus = cpus
        self.pids = pids
    }
}

/// Where a template version's image build stands (docker runtime).
public enum TemplateBuildState: String, Codable, Sendable, CaseIterable {
    /// The host runtime runs no images: nothing to build.
    case notNeeded = "not_needed"
    /// The manifest names files from a bundle that has not been uploaded yet.
    case awaitingBundle = "awaiting_bundle"
    case queued, building, succeeded
    /// Failed three times; it will not be retried.
    case deadLettered = "dead_lettered"

    /// Whether a session may run this version.
    public var isUsable: Bool { self == .notNeeded || self == .succeeded }
    public var isFinal: Bool { self == .notNeeded || self == .succeeded || self == .deadLettered }
}

/// A template version's build, as `flare template list` and `--wait` show it.
public struct TemplateBuildInfo: Codable, Sendable, Equatable {
    public var state: TemplateBuildState
    public var attempts: Int
    /// The built image's tag and id once it succeeded.
    public var image: String?
    public var imageId: String?
    public var error: String?

    public init(state: TemplateBuildState, attempts: Int, image: String? = nil, imageId: String? = nil,
                error: String? = nil) {
        self.state = state
        self.attempts = attempts
        self.image = image
        self.imageId = imageId
        self.error = error
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

/// A template version as the server's validator reads it from `POST /api/templates/{template}/versions`
/// (sent as a ``JSONValue``, so a bad field gets a message naming it rather than a generic decoding error).
public struct TemplateVersionCreateRequest: Codable, Sendable {
    public var version: String
    public var manifest: TemplateManifest

    public init(version: String, manifest: TemplateManifest) {
        self.version = version
        self.manifest = manifest
    }
}

/// `POST /api/templates/{template}/promote`: the version (label or id) new sessions get.
public struct TemplatePromoteRequest: Codable, Sendable {
    public var version: String

    public init(version: String) {
        self.version = version
    }
}

public struct TemplateVersionInfo: Codable, Sendable, Equatable {
    public var id: String
    public var templateId: String
    public var version: String
    public var manifest: TemplateManifest
    public var createdAt: Date
    public var promotedAt: Date?
    public var build: TemplateBuildInfo?

    public init(id: String, templateId: String, version: String, manifest: TemplateManifest, createdAt: Date,
                promotedAt: Date?, build: TemplateBuildInfo? = nil) {
        self.id = id
        self.templateId = templateId
        self.version = version
        self.manifest = manifest
        self.createdAt = createdAt
        self.promotedAt = promotedAt
        self.build = build
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
