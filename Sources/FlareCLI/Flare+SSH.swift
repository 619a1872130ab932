import ArgumentParser
import FlareClient
import FlareContracts
import Foundation

extension Flare {
    struct SSH: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ssh",
            abstract: "Open a shell in a session, or run a command there, with the real OpenSSH client.",
            discussion: """
                The first use creates an SSH key for you and registers it. The session's host key is
                pinned, so strict host-key checking stays on. The exit status is the remote command's.

                Examples:
                  flare ssh dev
                  flare ssh dev -- make test
                  flare ssh dev -t -- htop
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Session name or id.")
        var session: String
        @Flag(name: .shortAndLong, help: "Force a terminal even for a command.")
        var tty = false
        @Argument(parsing: .postTerminator, help: "Command to run instead of a login shell.")
        var command: [String] = []

        func run() async throws {
            let (info, arguments) = try await openSSHArguments(session: session, global: global)
            var ssh = arguments
            if tty { ssh.append("-tt") }
            ssh += ["flare@\(info.name).flare"]
            if !command.isEmpty { ssh += ["--"] + command }
            try execSSH(ssh)
        }
    }
}

/// The `ssh` command line (without destination) that reaches `session` through the gateway with
/// the CLI's key and the session's pinned host key; registers the key and pins on first use.
func openSSHArguments(session: String, global: GlobalOptions) async throws -> (SessionInfo, [String]) {
            let client = try await global.authenticatedClient()
            let info = try await client.call(Endpoints.Sessions.get.at(session))
            try requireReachable(info)
            try await UserKey.ensureRegistered(client: client)
            try UserKey.pinHostKey(of: info)
            let proxy = [currentExecutable(), "ssh-proxy", info.id, "--url", global.resolvedURL].map(shellQuoted)
                .joined(separator: " ")
            let arguments = [
                "ssh",
                "-i", UserKey.privateKeyPath.path,
                "-o", "IdentitiesOnly=yes",
                "-o", "IdentityAgent=none",
                "-o", "UserKnownHostsFile=\(UserKey.knownHostsPath.path)",
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "HostKeyAlias=\(UserKey.hostAlias(info))",
                "-o", "ProxyCommand=\(proxy)",
                "-o", "ServerAliveInterval=30",
            ]
            return (info, arguments)
}

/// Replaces the CLI with `ssh` (so its exit status is the user's).
func execSSH(_ arguments: [String]) throws -> Never {
    let argv = arguments.map { strdup($0) } + [nil]
    execvp("ssh", argv)
    throw CLIError("could not run ssh (\(String(cString: strerror(errno)))); install the OpenSSH client")
}

/// Explains, in words, why a session cannot be connected to right now. A sleeping session can:
/// connecting wakes it.
func requireReachable(_ info: SessionInfo) throws {
    switch info.state {
    case .running, .starting, .created, .sleeping: return
    case .stopping:
        throw CLIError("session \(info.name) is stopping; start it again with `flare session start \(info.name)`")
    case .failed:
        throw CLIError("session \(info.name) failed (\(info.stateReason)); restart it with `flare session start \(info.name)`")
    case .deleted:
        throw CLIError("session \(info.name) was deleted")
    }
}
