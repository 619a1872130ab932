import FlareSystem
import Foundation

/// Where and as whom the agent runs shells: the session's filesystem root stand-in, HOME, the
/// login shell, and the template's environment.
public struct ShellEnvironment: Sendable {
    /// Directory standing in for the session's filesystem root ("/" inside a container).
    public var root: String
    /// HOME as the session sees it, e.g. `/home/flare`.
    public var home: String
    /// The template's environment, applied to every shell and command.
    public var templateEnv: [String: String]
    /// Which SFTP server the `sftp` subsystem runs.
    public var sftp: SFTPChoice = .automatic
    /// Who children run as when the agent runs as root; nil runs them as the agent's own user.
    public var user: SessionUser?

    /// `automatic`: the image's OpenSSH `sftp-server` if it has one, else the agent's own;
    /// `builtIn`: always the agent's own (`flare-agent sftp-server`).
    public enum SFTPChoice: String, Sendable, CaseIterable {
        case automatic = "auto"
        case builtIn = "internal"
    }

    public init(root: String = "/", home: String? = nil, templateEnv: [String: String] = [:]) {
        self.root = root
        self.home = home ?? (root == "/" ? (ProcessInfo.processInfo.environment["HOME"] ?? "/") : "/home/flare")
        self.templateEnv = templateEnv
    }

    /// Maps a path inside the session to the real path on this machine.
    public func realPath(_ sessionPath: String) -> String {
        guard root != "/" else { return sessionPath }
        let base = root.hasSuffix("/") ? String(root.dropLast()) : root
        return sessionPath.hasPrefix("/") ? base + sessionPath : base + "/" + sessionPath
    }

    /// The real HOME directory (created if missing).
    public var realHome: String { realPath(home) }

    /// Creates `path` (and missing parents) for the session; with a ``user``, the directories
    /// made are the user's.
    public func createDirectory(_ path: String) throws {
        var missing: [String] = []
        var current = path
        while !current.isEmpty, current != "/", access(current, F_OK) != 0 {
            missing.append(current)
            current = (current as NSString).deletingLastPathComponent
        }
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        if let user { missing.forEach(user.own) }
    }

    var userName: String {
        if let user { return user.name }
        if let pw = getpwuid(getuid()), let name = pw.pointee.pw_name { return String(cString: name) }
        return ProcessInfo.processInfo.environment["USER"] ?? "flare"
    }

    /// The user's login shell if it exists, else bash, else sh.
    var shell: String {
        if let shell = user?.shell ?? getpwuid(getuid())?.pointee.pw_shell.map({ String(cString: $0) }) {
            if !shell.hasSuffix("nologin"), !shell.hasSuffix("false"), access(shell, X_OK) == 0 { return shell }
        }
        return access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh"
    }

    static let systemSFTPServers = ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server",
                                    "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server"]

    /// The command the `sftp` subsystem runs.
    var sftpServerCommand: [String] {
        if sftp == .automatic, let system = Self.systemSFTPServers.first(where: { access($0, X_OK) == 0 }) {
            return [system]
        }
        let agent = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        return [agent, "sftp-server"]
    }

    /// Whether a client's `env` request may set `name`.
    func allowsClientVariable(_ name: String) -> Bool {
        name == "LANG" || name.hasPrefix("LC_") || name == "TERM" || name == "COLORTERM"
            || templateEnv[name] != nil
    }

    /// The environment of a new shell or command.
    func environment(term: String?, clientVariables: [String: String]) -> [String: String] {
        var env: [String: String] = [
            "HOME": realHome,
            "USER": userName,
            "LOGNAME": userName,
            "SHELL": shell,
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        ]
        env.merge(templateEnv) { _, new in new }
        env.merge(clientVariables) { _, new in new }
        if let term { env["TERM"] = term }
        return env
    }
}
