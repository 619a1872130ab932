import Foundation

/// How the host runtime confines a session: bubblewrap (Debian's `bubblewrap`) with its own mount,
/// pid, ipc, uts and network namespaces, the agent and everything it starts running as an
/// unprivileged uid.
///
/// Inside, `/` is the session's own directory (read-write) with the host's system directories
/// bound read-only over it (`/usr`, `/bin`, `/lib*`, `/sbin`, `/etc`), a private `/tmp`, `/proc`
/// and `/dev`, a `passwd` naming the session user `flare`, the agent binary and its libraries
/// read-only, the agent's SSH socket directory, and its control channel read-only. Nothing else of
/// the host exists there: no data directory, no other session, no home directory.
///
/// Two ways in, by who the server is:
/// - **root**: bwrap runs as root, so it can bind the session's directories wherever the data
///   directory is (it stays 0700, under a home directory only root may enter if need be); then
///   `setpriv` drops to the session's own uid (one of ``uids``, unused by anything else, as sshd's
///   privilege-separation user is) with no capabilities and `no-new-privs` before the agent
///   starts. No user namespace is needed: the uid is unprivileged on the host itself, and no two
///   running sessions share one (nor their keyrings or per-user limits).
/// - **an unprivileged user**: bwrap makes a user namespace too and maps the server's uid to 1000;
///   every session then runs as the server's uid on the host.
public struct HostSandbox: Sendable {
    /// The uids (and gids) sandboxes run as on the host: a range of dedicated unprivileged ones when
    /// the server runs as root, else the server's own alone (an unprivileged user namespace maps it).
    public let uids: ClosedRange<uid_t>
    let bwrap: String
    /// Read-only binds for the agent's shared libraries outside the system directories.
    let libraryDirectories: [String]
    /// `setpriv` from util-linux, run inside the sandbox to drop from root to ``uid``; nil when the
    /// server is not root.
    let setpriv: String?

    /// Whether each session gets a uid of its own (the server is root).
    var hasSessionUIDs: Bool { setpriv != nil }

    /// The session user's uid inside a sandbox running as `uid` on the host.
    func insideUID(_ uid: uid_t) -> uid_t { setpriv == nil ? 1000 : uid }
    static let systemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"]

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Finds bwrap and checks a sandbox really starts here; throws with the reason when it cannot.
    public static func probe(agentExecutable: String, sandboxUIDs: ClosedRange<uid_t>) throws -> HostSandbox {
        guard let bwrap = [String](["/usr/bin/bwrap", "/bin/bwrap"]).first(where: { access($0, X_OK) == 0 }) else {
            throw Unavailable(description: "bubblewrap is not installed (apt-get install bubblewrap)")
        }
        let root = geteuid() == 0
        let setpriv = [String](["/usr/bin/setpriv", "/bin/setpriv"]).first { access($0, X_OK) == 0 }
        if root, setpriv == nil {
            throw Unavailable(description: "setpriv (util-linux) is needed to run sandboxes as an unprivileged uid")
        }
        if root, sandboxUIDs.lowerBound == 0 {
            throw Unavailable(description: "the sandbox uids must not include 0")
        }
        if root, let taken = usersOfThisHost().first(where: { sandboxUIDs.contains($0) }) {
            throw Unavailable(description: "uid \(taken) is in the sandbox uid range but belongs to a user of this host; "
                + "choose another --sandbox-uid")
        }
        let sandbox = HostSandbox(uids: root ? sandboxUIDs : getuid()...getuid(), bwrap: bwrap,
                                  libraryDirectories: libraryDirectories(of: agentExecutable),
                                  setpriv: root ? setpriv : nil)
        let probe = Process()
        let command = sandbox.command(["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"], run: ["/bin/true"],
                                      uid: sandbox.uids.lowerBound)
        probe.executableURL = URL(fileURLWithPath: command[0])
        probe.arguments = Array(command.dropFirst())
        probe.environment = ["PATH": "/usr/bin:/bin"]
        let errors = Pipe()
        probe.standardError = errors
        probe.standardOutput = FileHandle.nullDevice
        do {
            try probe.run()
        } catch {
            throw Unavailable(description: "cannot run \(bwrap): \(error.localizedDescription)")
        }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw Unavailable(description: "bubblewrap cannot create namespaces here: "
                + message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        return sandbox
    }

    /// `bwrap` with the namespaces and `mounts`, running `run` as the session user (`uid` on the host).
    func command(_ mounts: [String], run: [String], uid: uid_t) -> [String] {
        var arguments = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                         "--unshare-cgroup-try", "--new-session", "--as-pid-1",
                         "--hostname", "flare"]
        guard let setpriv else {
            return arguments + ["--unshare-user", "--uid", "\(insideUID(uid))", "--gid", "\(insideUID(uid))"] + mounts + run
        }
        // As root: the capabilities setpriv needs and nothing else. setpriv empties the bounding
        // and inheritable sets, its setuid clears the rest, and no-new-privs keeps setuid binaries
        // and file capabilities from bringing any back.
        arguments += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                      "--cap-add", "CAP_SETPCAP"]
        return arguments + mounts + [setpriv, "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups",
                                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"] + run
    }

    /// The full command that runs the agent confined.
    /// - Parameters:
    ///   - uid: the session's uid on the host (one of ``uids``).
    ///   - root: the session's directory, its `/` (owned by `uid`).
    ///   - identity: a directory holding the `passwd` and `group` the sandbox sees.
    ///   - runDirectory: where the agent creates its SSH socket (`/run/flare` inside).
    ///   - controlDirectory: the session's control channel (`/run/flare-control` inside, read-only).
    func agentCommand(uid: uid_t, agent: String, root: String, identity: String, runDirectory: String,
                      controlDirectory: String, agentArguments: [String]) -> [String] {
        var mounts = ["--bind", root, "/"]
        for directory in Self.systemDirectories where access(directory, F_OK) == 0 {
            mounts += ["--ro-bind", directory, directory]
        }
        mounts += ["--ro-bind", identity + "/passwd", "/etc/passwd", "--ro-bind", identity + "/group", "/etc/group"]
        // bwrap makes missing parents of a mount point 0700 and root's: the session user could not
        // pass them. Made 0755 first, as a system's /opt is.
        var made: Set<String> = []
        func parents(of destination: String) -> [String] {
            var arguments: [String] = []
            var path = ""
            for component in destination.split(separator: "/").dropLast() {
                path += "/" + component
                guard !Self.systemDirectories.contains(path), made.insert(path).inserted else { continue }
                arguments += ["--perms", "0755", "--dir", path]
            }
            return arguments
        }
        for directory in libraryDirectories {
            mounts += parents(of: directory) + ["--ro-bind", directory, directory]
        }
        mounts += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp", "--tmpfs", "/run",
                   "--bind", runDirectory, "/run/flare", "--ro-bind", controlDirectory, "/run/flare-control"]
        mounts += parents(of: "/opt/flare/bin/flare-agent")
            + ["--ro-bind", agent, "/opt/flare/bin/flare-agent", "--chdir", "/"]
        return command(mounts, run: ["/opt/flare/bin/flare-agent"] + agentArguments, uid: uid)
    }

    /// The session's user database: root, `flare` (the session user, `uid` on the host) and nobody.
    func passwd(uid: uid_t) -> String {
        """
        root:x:0:0:root:/root:/usr/sbin/nologin
        flare:x:\(insideUID(uid)):\(insideUID(uid)):BurstFlare session user:/home/flare:/bin/bash
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

        """
    }
    func group(uid: uid_t) -> String {
        """
        root:x:0:
        flare:x:\(insideUID(uid)):
        nogroup:x:65534:

        """
    }

    /// The uids of this host's user database.
    static func usersOfThisHost() -> [uid_t] {
        setpwent()
        defer { endpwent() }
        var uids: [uid_t] = []
        while let entry = getpwent() { uids.append(entry.pointee.pw_uid) }
        return uids
    }

    /// Directories of the agent's shared libraries that the system directories do not cover
    /// (the Swift runtime of a development toolchain, say), from `ldd`.
    static func libraryDirectories(of executable: String) -> [String] {
        let ldd = Process()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [executable]
        let output = Pipe()
        ldd.standardOutput = output
        ldd.standardError = FileHandle.nullDevice
        guard (try? ldd.run()) != nil else { return [] }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ldd.waitUntilExit()
        var directories: Set<String> = []
        for line in text.split(separator: "\n") {
            guard let path = line.split(separator: " ").first(where: { $0.hasPrefix("/") }) else { continue }
            let directory = (String(path) as NSString).deletingLastPathComponent
            if !systemDirectories.contains(where: { directory == $0 || directory.hasPrefix($0 + "/") }) {
                directories.insert(directory)
            }
        }
        return directories.sorted()
    }
}
