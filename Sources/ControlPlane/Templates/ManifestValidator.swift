import FlareContracts

/// Checks a template version request field by field. Every refusal is a 400 whose message names
/// the field, e.g. `manifest.persistedPaths[1] must be an absolute path`.
enum ManifestValidator {
    static let maxPersistedPaths = 8
    static let reservedEnv: Set<String> = ["HOME", "USER", "LOGNAME", "SHELL"]
    static let knownFields: Set<String> = ["image", "persistedPaths", "idleTimeoutSeconds", "sleepTtlSeconds", "env",
                                           "packages", "setup", "resources", "files"]

    static func validate(_ body: JSONValue) throws -> TemplateVersionCreateRequest {
        guard case .object(let fields) = body else { throw invalid("body", "must be a JSON object") }
        let version = try versionString(fields["version"])
        guard case .object(let manifest)? = fields["manifest"] else {
            throw invalid("manifest", fields["manifest"] == nil ? "is required" : "must be an object")
        }
        if let unknown = manifest.keys.sorted().first(where: { !knownFields.contains($0) }) {
            throw invalid("manifest.\(unknown)", "is not a known field (known: \(knownFields.sorted().joined(separator: ", ")))")
        }
        guard case .string(let image)? = manifest["image"],
              !image.trimmingCharacters(in: .whitespaces).isEmpty, image.count <= 255
        else {
            throw invalid("manifest.image", manifest["image"] == nil ? "is required" : "must be a non-empty string")
        }
        guard isImageReference(image) else {
            throw invalid("manifest.image", "must be an image reference such as debian:bookworm or "
                + "burstflare/session-base (lowercase name, optional :tag)")
        }
        let result = TemplateManifest(
            image: image,
            persistedPaths: try persistedPaths(manifest["persistedPaths"]),
            idleTimeoutSeconds: try seconds(manifest["idleTimeoutSeconds"], field: "idleTimeoutSeconds",
                                            default: 1800, range: 1...604_800),
            sleepTtlSeconds: try seconds(manifest["sleepTtlSeconds"], field: "sleepTtlSeconds",
                                         default: 7 * 86400, range: 1...31_536_000),
            env: try environment(manifest["env"]),
            packages: try packages(manifest["packages"]),
            setup: try setup(manifest["setup"]),
            resources: try resources(manifest["resources"]),
            files: try files(manifest["files"]))
        return TemplateVersionCreateRequest(version: version, manifest: result)
    }

    static func invalid(_ field: String, _ problem: String) -> ServiceError {
        ServiceError.invalid("\(field) \(problem)", code: "invalid_manifest")
    }

    private static func versionString(_ value: JSONValue?) throws -> String {
        guard case .string(let version)? = value else {
            throw invalid("version", value == nil ? "is required" : "must be a string")
        }
        let allowed = version.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-+".contains($0)) }
        guard !version.isEmpty, version.count <= 64, allowed else {
            throw invalid("version", "must be 1-64 characters of letters, digits, '.', '_', '-' or '+'")
        }
        return version
    }

    private static func persistedPaths(_ value: JSONValue?) throws -> [String] {
        guard let value else { return [] }
        guard case .array(let items) = value else { throw invalid("manifest.persistedPaths", "must be an array") }
        guard items.count <= maxPersistedPaths else {
            throw invalid("manifest.persistedPaths", "has \(items.count) entries; at most \(maxPersistedPaths) allowed")
        }
        var seen: Set<String> = []
        return try items.enumerated().map { index, item in
            let field = "manifest.persistedPaths[\(index)]"
            guard case .string(let path) = item else { throw invalid(field, "must be a string") }
            guard path.hasPrefix("/") else { throw invalid(field, "must be an absolute path") }
            guard path != "/" else { throw invalid(field, "cannot be the whole filesystem (/)") }
            let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard !path.hasSuffix("/"), !components.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
                  path.count <= 1024, !path.contains("\0")
            else { throw invalid(field, "must be a normalized path (no '//', '.', '..' or trailing '/')") }
            guard seen.insert(path).inserted else { throw invalid(field, "repeats \(path)") }
            if let system = protectedPaths.first(where: { overlaps(path, $0) }) {
                throw invalid(field, "cannot be \(system), inside it or above it (the system's and the agent's own "
                    + "files); persist your own directories, such as /home/flare")
            }
            return path
        }
    }

    private static func seconds(_ value: JSONValue?, field: String, default fallback: Int, range: ClosedRange<Int>)
        throws -> Int
    {
        guard let value else { return fallback }
        guard case .integer(let seconds) = value else { throw invalid("manifest.\(field)", "must be a whole number") }
        guard range.contains(seconds) else {
            throw invalid("manifest.\(field)", "must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return seconds
    }

    private static func environment(_ value: JSONValue?) throws -> [String: String] {
        guard let value else { return [:] }
        guard case .object(let entries) = value else { throw invalid("manifest.env", "must be an object") }
        guard entries.count <= 64 else { throw invalid("manifest.env", "has more than 64 variables") }
        var env: [String: String] = [:]
        for (name, item) in entries {
            let field = "manifest.env.\(name)"
            let validName = name.first.map { $0 == "_" || ($0.isASCII && $0.isLetter) } == true
                && name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
            guard validName, name.count <= 128 else { throw invalid(field, "is not a valid variable name") }
            guard !reservedEnv.contains(name) else { throw invalid(field, "is set by the session itself") }
            guard case .string(let text) = item, !text.contains("\0"), text.count <= 4096 else {
                throw invalid(field, "must be a string of at most 4096 characters")
            }
            env[name] = text
        }
        return env
    }

    private static func packages(_ value: JSONValue?) throws -> [String] {
        guard let value else { return [] }
        guard case .array(let items) = value else { throw invalid("manifest.packages", "must be an array") }
        guard items.count <= 200 else { throw invalid("manifest.packages", "has more than 200 packages") }
        return try items.enumerated().map { index, item in
            // Debian package names (policy §5.6.1), optionally with =version; nothing a shell would read.
            guard case .string(let name) = item, let first = name.first, first.isASCII, first.isLetter || first.isNumber,
                  name.count <= 128,
                  name.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || "+-.=:~".contains($0)) })
            else { throw invalid("manifest.packages[\(index)]", "must be a Debian package name like \"jq\"") }
            return name
        }
    }

    private static func setup(_ value: JSONValue?) throws -> String? {
        guard let value else { return nil }
        guard case .string(let script) = value, script.utf8.count <= 64 * 1024, !script.contains("\0") else {
            throw invalid("manifest.setup", "must be a shell script of at most 64 KiB")
        }
        return script
    }

    private static func resources(_ value: JSONValue?) throws -> TemplateResources? {
        guard let value else { return nil }
        guard case .object(let fields) = value else { throw invalid("manifest.resources", "must be an object") }
        if let unknown = fields.keys.sorted().first(where: { !["memoryMB", "cpus", "pids"].contains($0) }) {
            throw invalid("manifest.resources.\(unknown)", "is not a known field (known: cpus, memoryMB, pids)")
        }
        func whole(_ name: String, _ range: ClosedRange<Int>) throws -> Int? {
            guard let item = fields[name] else { return nil }
            guard case .integer(let number) = item, range.contains(number) else {
                throw invalid("manifest.resources.\(name)", "must be a whole number from \(range.lowerBound) to \(range.upperBound)")
            }
            return number
        }
        var cpus: Double?
        switch fields["cpus"] {
        case nil: cpus = nil
        case .integer(let number)?: cpus = Double(number)
        case .number(let number)?: cpus = number
        default: throw invalid("manifest.resources.cpus", "must be a number")
        }
        if let cpus, !(0.1...64).contains(cpus) { throw invalid("manifest.resources.cpus", "must be from 0.1 to 64") }
        return TemplateResources(memoryMB: try whole("memoryMB", 64...262_144), cpus: cpus, pids: try whole("pids", 16...65_536))
    }

    private static func files(_ value: JSONValue?) throws -> [TemplateFile] {
        guard let value else { return [] }
        guard case .array(let items) = value else { throw invalid("manifest.files", "must be an array") }
        guard items.count <= 64 else { throw invalid("manifest.files", "has more than 64 entries") }
        func normalized(_ path: String) -> Bool {
            let parts = path.split(separator: "/", omittingEmptySubsequences: false)
            return !parts.contains { $0.isEmpty || $0 == "." || $0 == ".." } && path.count <= 1024 && !path.contains("\0")
                && !path.contains(where: { $0.isWhitespace || "\"'$`\\".contains($0) })
        }
        let files = try items.enumerated().map { index, item in
            let field = "manifest.files[\(index)]"
            guard case .object(let entry) = item, case .string(let from)? = entry["from"], case .string(let to)? = entry["to"],
                  entry.count == 2
            else { throw invalid(field, #"must be {"from": "path/in/bundle", "to": "/path/in/image"}"#) }
            guard !from.hasPrefix("/"), normalized(from) else {
                throw invalid(field + ".from", "must be a normalized relative path inside the bundle")
            }
            guard to.hasPrefix("/"), to != "/", normalized(String(to.dropFirst())) else {
                throw invalid(field + ".to", "must be a normalized absolute path other than /")
            }
            return TemplateFile(from: from, to: to)
        }
        // One entry inside another would be placed through the first one, which may be a link the
        // bundle carries: each source and each destination stands alone.
        for (index, file) in files.enumerated() {
            for (other, earlier) in files.prefix(index).enumerated() {
                if overlaps(file.to, earlier.to) {
                    throw invalid("manifest.files[\(index)].to", "overlaps manifest.files[\(other)].to (\(earlier.to))")
                }
                if overlaps("/" + file.from, "/" + earlier.from) {
                    throw invalid("manifest.files[\(index)].from", "overlaps manifest.files[\(other)].from (\(earlier.from))")
                }
            }
        }
        return files
    }

    /// Whether one path is the other or lies inside it.
    static func overlaps(_ a: String, _ b: String) -> Bool {
        a == b || a.hasPrefix(b + "/") || b.hasPrefix(a + "/")
    }

    /// Where the agent keeps its own state and sockets, and the system's directories: a persisted
    /// path there (or above one) would have the agent, which runs as root in a container, archive
    /// its secrets or restore the user's files over the system.
    static let protectedPaths = ["/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc",
                                 "/run", "/sbin", "/sys", "/usr", "/var/run", "/var/lib/flare-agent", "/opt/flare",
                                 "/opt/flare-run", "/opt/flare-control"]

    /// A Docker image reference: `[host[:port]/]name[/name…][:tag][@sha256:digest]`, lowercase names.
    static func isImageReference(_ image: String) -> Bool {
        let pattern = #"^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"#
            + #"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"#
        return image.range(of: pattern, options: .regularExpression) != nil
    }

    /// Refuses resources above the operator's ceilings: a template never gets a bigger container
    /// than the server allows.
    static func check(_ resources: TemplateResources?, within ceilings: TemplateResources) throws {
        guard let resources else { return }
        func refuse(_ field: String, _ asked: String, _ limit: String) -> ServiceError {
            ServiceError.invalid("manifest.resources.\(field) asks for \(asked); this server allows at most \(limit) "
                + "(the operator sets it with flare-server --max-session-\(field == "memoryMB" ? "memory-mib" : field))",
                code: "resources_exceed_limit")
        }
        if let asked = resources.memoryMB, let limit = ceilings.memoryMB, asked > limit {
            throw refuse("memoryMB", "\(asked)", "\(limit)")
        }
        if let asked = resources.cpus, let limit = ceilings.cpus, asked > limit {
            throw refuse("cpus", "\(asked)", "\(limit)")
        }
        if let asked = resources.pids, let limit = ceilings.pids, asked > limit {
            throw refuse("pids", "\(asked)", "\(limit)")
        }
    }
}
