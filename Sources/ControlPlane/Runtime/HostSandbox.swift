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
///   `setpriv` drops to the sandbox uid (``uid``, a dedicated one, as sshd's privilege-separation
///   user) with no capabilities and `no-new-privs` before the agent starts. No user namespace is
///   needed: the uid is unprivileged on the host itself.
/// - **an unprivileged user**: bwrap makes a user namespace too and maps the server's uid to 1000.
public struct HostSandbox: Sendable {
    /// The uid (and gid) sandboxes run as on the host: a dedicated unprivileged one when the server
    /// runs as root, else the server's own (an unprivileged user namespace maps it).
    public let uid: uid_t
    let bwrap: String
    /// Read-only binds for the agent's shared libraries outside the system directories.
    let libraryDirectories: [String]
    /// `setpriv` from util-linux, run inside the sandbox to drop from root to ``uid``; nil when the
    /// server is not root.
    let setpriv: String?

    /// The session user's uid inside the sandbox.
    var insideUID: uid_t { setpriv == nil ? 1000 : uid }
    static let systemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"]

    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    /// Finds bwrap and checks a sandbox really starts here; throws with the reason when it cannot.
    public static func probe(agentExecutable: String, sandboxUID: uid_t) throws -> HostSandbox {
        guard let bwrap = [String](["/usr/bin/bwrap", "/bin/bwrap"]).first(where: { access($0, X_OK) == 0 }) else {
            throw Unavailable(description: "bubblewrap is not installed (apt-get install bubblewrap)")
        }
        let root = geteuid() == 0
        let setpriv = [String](["/usr/bin/setpriv", "/bin/setpriv"]).first { access($0, X_OK) == 0 }
        if root, setpriv == nil {
            throw Unavailable(description: "setpriv (util-linux) is needed to run sandboxes as an unprivileged uid")
        }
        if root, sandboxUID == 0 {
            throw Unavailable(description: "the sandbox uid must not be 0")
        }
        let sandbox = HostSandbox(uid: root ? sandboxUID : getuid(), bwrap: bwrap,
                                  libraryDirectories: libraryDirectories(of: agentExecutable),
                                  setpriv: root ? setpriv : nil)
        let probe = Process()
        let command = sandbox.command(["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"], run: ["/bin/true"])
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

    /// `bwrap` with the namespaces and `mounts`, running `run` as the session user.
    func command(_ mounts: [String], run: [String]) -> [String] {
        var arguments = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
                         "--unshare-cgroup-try", "--new-session", "--as-pid-1",
                         "--hostname", "flare"]
        guard let setpriv else {
            return arguments + ["--unshare-user", "--uid", "\(insideUID)", "--gid", "\(insideUID)"] + mounts + run
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
    ///   - root: the session's directory, its `/` (owned by ``uid``).
    ///   - identity: a directory holding the `passwd` and `group` the sandbox sees.
    ///   - runDirectory: where the agent creates its SSH socket (`/run/flare` inside).
    ///   - controlDirectory: the session's control channel (`/run/flare-control` inside, read-only).
    func agentCommand(agent: String, root: String, identity: String, runDirectory: String, controlDirectory: String,
                      agentArguments: [String]) -> [String] {
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
        return command(mounts, run: ["/opt/flare/bin/flare-agent"] + agentArguments)
    }

    /// The session's user database: root, `flare` (the session user) and nobody.
    var passwd: String {
        """
        root:x:0:0:root:/root:/usr/sbin/nologin
        flare:x:\(insideUID):\(insideUID):BurstFlare session user:/home/flare:/bin/bash
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

        """
    }
    var group: String {
        """
        root:x:0:
        flare:x:\(insideUID):
        nogroup:x:65534:

        """
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
