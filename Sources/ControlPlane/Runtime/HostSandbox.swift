import Foundation

/// How the host runtime confines a session: bubblewrap (Debian's `bubblewrap`) with its own mount,
/// pid, user, ipc, uts and network namespaces, run as an unprivileged uid.
///
/// Inside, `/` is the session's own directory (read-write) with the host's system directories
/// bound read-only over it (`/usr`, `/bin`, `/lib*`, `/sbin`, `/etc`), a private `/tmp`, `/proc`
/// and `/dev`, a `passwd` naming the session user `flare` (uid 1000 inside), the agent binary and
/// its libraries read-only, the agent's SSH socket directory, and its control channel read-only.
/// Nothing else of the host exists there: no data directory, no other session, no home directory.
public struct HostSandbox: Sendable {
    /// The uid (and gid) sandboxes run as on the host: a dedicated unprivileged one when the server
    /// runs as root, else the server's own (an unprivileged user namespace maps it).
    public let uid: uid_t
    let bwrap: String
    /// Read-only binds for the agent's shared libraries outside the system directories.
    let libraryDirectories: [String]
    /// `setpriv` from util-linux, to drop from root to ``uid`` before bwrap runs.
    let setpriv: String?

    /// The uid inside every sandbox: the session user `flare`.
    static let insideUID: uid_t = 1000
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
        let sandbox = HostSandbox(uid: root ? sandboxUID : getuid(), bwrap: bwrap,
                                  libraryDirectories: libraryDirectories(of: agentExecutable),
                                  setpriv: root ? setpriv : nil)
        let probe = Process()
        let command = sandbox.command(["--unshare-all", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                                       "/bin/true"])
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

    /// `setpriv … bwrap ARGS` (or bwrap alone when the server is not root).
    func command(_ bwrapArguments: [String]) -> [String] {
        guard let setpriv else { return [bwrap] + bwrapArguments }
        return [setpriv, "--reuid", "\(uid)", "--regid", "\(uid)", "--clear-groups", "--no-new-privs", bwrap]
            + bwrapArguments
    }

    /// The full command that runs the agent confined.
    /// - Parameters:
    ///   - root: the session's directory, its `/` (owned by ``uid``).
    ///   - identity: a directory holding the `passwd` and `group` the sandbox sees.
    ///   - runDirectory: where the agent creates its SSH socket (`/run/flare` inside).
    ///   - controlDirectory: the session's control channel (`/run/flare-control` inside, read-only).
    func agentCommand(agent: String, root: String, identity: String, runDirectory: String, controlDirectory: String,
                      agentArguments: [String]) -> [String] {
        var arguments = ["--unshare-all", "--new-session", "--as-pid-1", "--hostname", "flare",
                         "--uid", "\(Self.insideUID)", "--gid", "\(Self.insideUID)",
                         "--bind", root, "/"]
        for directory in Self.systemDirectories where access(directory, F_OK) == 0 {
            arguments += ["--ro-bind", directory, directory]
        }
        arguments += ["--ro-bind", identity + "/passwd", "/etc/passwd", "--ro-bind", identity + "/group", "/etc/group"]
        for directory in libraryDirectories {
            arguments += ["--ro-bind", directory, directory]
        }
        arguments += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run",
                      "--bind", runDirectory, "/run/flare", "--ro-bind", controlDirectory, "/run/flare-control",
                      "--ro-bind", agent, "/opt/flare/bin/flare-agent",
                      "--chdir", "/", "/opt/flare/bin/flare-agent"]
        return command(arguments + agentArguments)
    }

    /// The session's user database: root, `flare` (1000) and nobody.
    static let passwd = """
        root:x:0:0:root:/root:/usr/sbin/nologin
        flare:x:1000:1000:BurstFlare session user:/home/flare:/bin/bash
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin

        """
    static let group = """
        root:x:0:
        flare:x:1000:
        nogroup:x:65534:

        """

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
