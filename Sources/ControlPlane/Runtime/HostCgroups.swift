import Foundation

/// A host session's resource limits, as docker sets them for a container: memory (and no swap
/// beyond it), CPU time and processes. One cgroup per session under a `burstflare` parent, on
/// cgroup v2 (unified) or v1 (a hierarchy per controller). Only root can make them.
///
/// The agent joins its cgroups before bubblewrap starts (``joinCommand(_:then:)``), so everything
/// in the sandbox is counted from its first instruction; the cgroup namespace bwrap makes hides
/// the path from inside.
public struct HostCgroups: Sendable {
    public struct Limits: Sendable, Equatable {
        public var memoryBytes: Int64
        public var cpus: Double
        public var pids: Int

        public init(memoryBytes: Int64, cpus: Double, pids: Int) {
            self.memoryBytes = memoryBytes
            self.cpus = cpus
            self.pids = pids
        }
    }

    enum Layout: Sendable, Equatable {
        /// The cgroup v2 mount.
        case unified(String)
        /// The v1 mount of each controller (memory, pids, cpu).
        case legacy(memory: String, pids: String, cpu: String)
    }

    let layout: Layout
    static let parent = "burstflare"

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// The cgroup layout of this machine, with the parent cgroup made and its controllers enabled.
    public static func probe(mount: String = "/sys/fs/cgroup") throws -> HostCgroups {
        guard geteuid() == 0 else { throw Unavailable(description: "only root can make cgroups") }
        let fm = FileManager.default
        if fm.fileExists(atPath: mount + "/cgroup.controllers") {
            let controllers = (try? String(contentsOfFile: mount + "/cgroup.controllers", encoding: .utf8)) ?? ""
            for needed in ["memory", "pids", "cpu"] where !controllers.split(separator: " ").contains(Substring(needed)) {
                throw Unavailable(description: "the cgroup v2 controller \(needed) is not available")
            }
            let parent = mount + "/" + Self.parent
            try? fm.createDirectory(atPath: parent, withIntermediateDirectories: false)
            for directory in [mount, parent] {
                guard write("+memory +pids +cpu", to: directory + "/cgroup.subtree_control") else {
                    throw Unavailable(description: "cannot enable the memory, pids and cpu controllers in \(directory): "
                        + "\(String(cString: strerror(errno))) (a cgroup holding processes, as a container's root "
                        + "cgroup does, cannot delegate them; start the server in a cgroup of its own)")
                }
            }
            let cgroups = HostCgroups(layout: .unified(mount))
            cgroups.removeEmpty()
            return cgroups
        }
        let (memory, pids, cpu) = (mount + "/memory", mount + "/pids", mount + "/cpu")
        for controller in [memory, pids, cpu] {
            guard fm.fileExists(atPath: controller + "/cgroup.procs") else {
                throw Unavailable(description: "no cgroup hierarchy at \(controller)")
            }
            try? fm.createDirectory(atPath: controller + "/" + Self.parent, withIntermediateDirectories: false)
        }
        let cgroups = HostCgroups(layout: .legacy(memory: memory, pids: pids, cpu: cpu))
        cgroups.removeEmpty()
        return cgroups
    }

    /// Removes the cgroups no process is in any more: those of agents that ended while no server
    /// watched them. A running agent's cgroup is busy and stays; one made in the last minute may be
    /// another server's, about to be joined, and stays too.
    func removeEmpty() {
        let now = time(nil)
        let parents: [String]
        switch layout {
        case .unified(let mount): parents = [mount]
        case .legacy(let memory, let pids, let cpu): parents = [memory, pids, cpu]
        }
        for parent in parents.map({ $0 + "/" + Self.parent }) {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] {
                var info = stat()
                if lstat(parent + "/" + name, &info) == 0, info.st_mode & S_IFMT == S_IFDIR, info.st_ctim.tv_sec < now - 60 {
                    rmdir(parent + "/" + name)
                }
            }
        }
    }

    /// The cgroup (a name under the parent) a process is in, from `/proc` seen from outside its
    /// cgroup namespace.
    func name(ofProcess pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            guard let range = line.range(of: "/\(Self.parent)/") else { continue }
            let name = line[range.upperBound...].split(separator: "/").first.map(String.init)
            if let name, !name.isEmpty { return name }
        }
        return nil
    }

    /// A cgroup's directories, one per hierarchy.
    func directories(_ name: String) -> [String] {
        switch layout {
        case .unified(let mount): return ["\(mount)/\(Self.parent)/\(name)"]
        case .legacy(let memory, let pids, let cpu):
            return [memory, pids, cpu].map { "\($0)/\(Self.parent)/\(name)" }
        }
    }

    /// Makes the cgroup `name` (one run of a session's agent) with `limits` and returns the
    /// `cgroup.procs` files the agent must join.
    func create(_ name: String, limits: Limits) throws -> [String] {
        let directories = directories(name)
        for directory in directories {
            guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
                throw Unavailable(description: "cannot make the cgroup \(directory): \(String(cString: strerror(errno)))")
            }
        }
        let quota = max(1000, Int(limits.cpus * 100_000))
        let settings: [(String, String)]
        switch layout {
        case .unified:
            let directory = directories[0]
            settings = [(directory + "/memory.max", "\(limits.memoryBytes)"),
                        (directory + "/memory.swap.max", "0"),
                        (directory + "/pids.max", "\(limits.pids)"),
                        (directory + "/cpu.max", "\(quota) 100000")]
        case .legacy:
            let (memory, pids, cpu) = (directories[0], directories[1], directories[2])
            settings = [(memory + "/memory.limit_in_bytes", "\(limits.memoryBytes)"),
                        (memory + "/memory.memsw.limit_in_bytes", "\(limits.memoryBytes)"),
                        (pids + "/pids.max", "\(limits.pids)"),
                        (cpu + "/cpu.cfs_period_us", "100000"),
                        (cpu + "/cpu.cfs_quota_us", "\(quota)")]
        }
        for (file, value) in settings where !Self.write(value, to: file) {
            // Swap accounting is off on many kernels: without it there is no swap to limit.
            if file.hasSuffix("memsw.limit_in_bytes") || file.hasSuffix("swap.max"),
               !FileManager.default.fileExists(atPath: file) { continue }
            remove(name)
            throw Unavailable(description: "cannot set \(file) to \(value): \(String(cString: strerror(errno)))")
        }
        return directories.map { $0 + "/cgroup.procs" }
    }

    /// Removes the cgroup `name` once its processes are gone (waits up to `timeout`).
    func remove(_ name: String, timeout: Duration = .seconds(2)) {
        let deadline = ContinuousClock.now + timeout
        for directory in directories(name) {
            while rmdir(directory) != 0, errno == EBUSY, ContinuousClock.now < deadline {
                usleep(20_000)
            }
        }
    }

    /// `command` preceded by a shell that moves itself into `procs` and then executes it, so the
    /// command and all it starts are in the cgroups from the start.
    static func joinCommand(_ procs: [String], then command: [String]) -> [String] {
        let script = #"n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@""#
        return ["/bin/sh", "-c", script, "flare-cgroup", "\(procs.count)"] + procs + command
    }

    private static func write(_ value: String, to file: String) -> Bool {
        let descriptor = open(file, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return value.withCString { Glibc.write(descriptor, $0, strlen($0)) } >= 0
    }
}
