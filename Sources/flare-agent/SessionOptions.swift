import Agent
import ArgumentParser
import FlareSystem
import Foundation

/// Where the agent listens and what filesystem it serves; shared by `serve` and `run`.
struct SessionOptions: ParsableArguments {
    @Option(help: "unix:PATH or tcp:HOST:PORT (port 0 picks a free port).")
    var listen: String
    @Option(help: "Directory standing in for the session's filesystem root.")
    var root: String = "/"
    @Option(help: "HOME as the session sees it (default /home/flare under --root, else $HOME).")
    var home: String?
    @Option(help: "Seconds running commands get to finish after SIGTERM before clients are disconnected.")
    var graceSeconds: Int = 5
    @Option(help: "SFTP server for the sftp subsystem: auto (the image's sftp-server if present) or internal.")
    var sftp: String = "auto"
    @Option(help: "Run every shell, command and sftp server as this user (the agent must run as root).")
    var user: String?

    /// The shell environment these options describe.
    func environment(home defaultHome: String? = nil, templateEnv: [String: String] = [:]) throws -> ShellEnvironment {
        let sessionUser = try user.map(SessionUser.lookup)
        var environment = ShellEnvironment(root: root, home: home ?? sessionUser?.home ?? defaultHome,
                                           templateEnv: templateEnv)
        environment.sftp = ShellEnvironment.SFTPChoice(rawValue: sftp) ?? .automatic
        environment.user = sessionUser
        return environment
    }

    var address: ListenAddress { ListenAddress(listen)! }

    func validate() throws {
        guard ListenAddress(listen) != nil else {
            throw ValidationError("--listen must be unix:PATH or tcp:HOST:PORT, not '\(listen)'")
        }
        guard graceSeconds >= 0 else { throw ValidationError("--grace-seconds must not be negative") }
        if user != nil, geteuid() != 0 {
            throw ValidationError("--user needs the agent to run as root (it drops to that user for every child)")
        }
        guard ShellEnvironment.SFTPChoice(rawValue: sftp) != nil else {
            throw ValidationError("--sftp must be auto or internal")
        }
    }
}
