import CSpawn
import Foundation

/// A command the agent runs for a channel: a shell or `sh -c COMMAND`, on pipes or a PTY.
///
/// The parent's ends are non-blocking and close-on-exec; the child starts with default signal
/// handling, an empty signal mask and its own session (so a PTY becomes its controlling terminal).
public final class ChildProcess {
    /// What the child's standard streams are connected to.
    public enum IO {
        case pipes
        case terminal(TerminalSize)
        /// `stdin` (the caller's, left open) as standard input, `extra` (when >= 0) as descriptor 3,
        /// pipes for standard output and error.
        case descriptors(stdin: Int32, extra: Int32)
    }

    public let pid: pid_t
    /// Write end of the child's stdin (pipes) or the PTY master (terminal).
    public let input: Int32
    /// Read end of the child's stdout (pipes) or the PTY master (terminal).
    public let output: Int32
    /// Read end of the child's stderr; -1 for a terminal.
    public let errorOutput: Int32
    public let isTerminal: Bool

    public struct SpawnError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts `executable` (a full path) with `arguments` (argv, including argv[0]) and
    /// `environment`, in `directory`; as `user` when given (the agent then runs as root).
    public init(executable: String, arguments: [String], environment: [String: String], directory: String, io: IO,
         user: SessionUser? = nil) throws {
        var childEnds: [Int32] = []
        defer { childEnds.forEach { close($0) } }
        var ttyPath: String?
        var extra: Int32 = -1
        switch io {
        case .pipes:
            let stdinPipe = try Self.pipe(), stdoutPipe = try Self.pipe(), stderrPipe = try Self.pipe()
            childEnds = [stdinPipe.read, stdoutPipe.write, stderrPipe.write]
            input = stdinPipe.write
            output = stdoutPipe.read
            errorOutput = stderrPipe.read
            isTerminal = false
        case .descriptors(let stdin, let extraDescriptor):
            let stdoutPipe = try Self.pipe(), stderrPipe = try Self.pipe()
            childEnds = [stdoutPipe.write, stderrPipe.write]
            extra = extraDescriptor
            input = stdin
            output = stdoutPipe.read
            errorOutput = stderrPipe.read
            isTerminal = false
        case .terminal(let size):
            let master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)
            guard master >= 0, grantpt(master) == 0, unlockpt(master) == 0, let name = ptsname(master) else {
                if master >= 0 { close(master) }
                throw SpawnError(description: "no pseudo-terminal available: \(String(cString: strerror(errno)))")
            }
            let slavePath = String(cString: name)
            // grantpt made the slave the agent's; the user's shell must own its terminal.
            if let user {
                guard chown(slavePath, user.uid, user.gid) == 0, chmod(slavePath, 0o620) == 0 else {
                    close(master)
                    throw SpawnError(description: "cannot give the terminal to \(user.name): \(String(cString: strerror(errno)))")
                }
            }
            Self.resize(master: master, to: size)
            ttyPath = slavePath
            input = master
            output = master
            errorOutput = -1
            isTerminal = true
        }

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        let groups = user?.groups ?? []
        let isCallersInput: Bool
        if case .descriptors = io { isCallersInput = true } else { isCallersInput = false }
        let stdinDescriptor = childEnds.count == 3 ? childEnds[0] : input
        var pid: pid_t = 0
        let rc = executable.withCString { path in
            directory.withCString { directory in
                (ttyPath ?? "").withCString { tty in
                    groups.withUnsafeBufferPointer { groupList in
                        argv.withUnsafeBufferPointer { argvList in
                            envp.withUnsafeBufferPointer { envpList in
                                // Like sshd: the command gets stdin, stdout and stderr and nothing else
                                // the agent holds (flare_spawn closes every other descriptor).
                                var request = flare_spawn_request(
                                    path: path, argv: argvList.baseAddress, envp: envpList.baseAddress,
                                    directory: directory,
                                    stdin_fd: stdinDescriptor,
                                    stdout_fd: childEnds.count == 3 ? childEnds[1] : childEnds.first ?? -1,
                                    stderr_fd: childEnds.count == 3 ? childEnds[2] : childEnds.last ?? -1,
                                    tty_path: ttyPath == nil ? nil : tty,
                                    set_ids: user == nil ? 0 : 1, uid: user?.uid ?? 0, gid: user?.gid ?? 0,
                                    groups: groupList.baseAddress, group_count: Int32(groupList.count),
                                    extra_fd: extra)
                                return flare_spawn(&request, &pid)
                            }
                        }
                    }
                }
            }
        }
        guard rc == 0 else {
            [isCallersInput ? -1 : input, output, errorOutput].filter { $0 >= 0 }.forEach { close($0) }
            throw SpawnError(description: "could not start \(executable): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        for fd in Set([isCallersInput ? -1 : input, output, errorOutput]) where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
    }

    /// Sets the terminal size (and sends SIGWINCH to the foreground group).
    public func resize(to size: TerminalSize) {
        guard isTerminal else { return }
        Self.resize(master: input, to: size)
    }

    /// Sends `signal` to the child's process group (the child leads its own session).
    public func signal(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Non-blocking check for exit.
    public func pollExit() -> ExitStatus? {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        guard rc == pid else { return nil }
        return ExitStatus(waitStatus: status)
    }

    private static func resize(master: Int32, to size: TerminalSize) {
        var ws = winsize(ws_row: UInt16(clamping: size.rows), ws_col: UInt16(clamping: size.columns),
                         ws_xpixel: UInt16(clamping: size.pixelWidth), ws_ypixel: UInt16(clamping: size.pixelHeight))
        _ = ioctl(master, UInt(TIOCSWINSZ), &ws)
    }

    private static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard Glibc.pipe(&fds) == 0 else {
            throw SpawnError(description: "pipe failed: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        // 1 MiB instead of 64 KiB: bulk transfers then rarely wait on a full pipe.
        Descriptors.setPipeSize(fds[1], 1 << 20)
        return (fds[0], fds[1])
    }
}

/// How a child ended, as SSH reports it.
public enum ExitStatus: Equatable, Sendable {
    case exited(Int32)
    case signaled(name: String, coreDumped: Bool)

    public init(waitStatus status: Int32) {
        if flare_wifsignaled(status) != 0 {
            let number = flare_wtermsig(status)
            self = .signaled(name: Signals.name(of: number), coreDumped: flare_wcoredump(status) != 0)
        } else {
            self = .exited(flare_wexitstatus(status))
        }
    }
}

/// Signal names as SSH's `signal` and `exit-signal` messages spell them (no `SIG` prefix).
public enum Signals {
    public static let byName: [String: Int32] = [
        "ABRT": SIGABRT, "ALRM": SIGALRM, "FPE": SIGFPE, "HUP": SIGHUP, "ILL": SIGILL, "INT": SIGINT,
        "KILL": SIGKILL, "PIPE": SIGPIPE, "QUIT": SIGQUIT, "SEGV": SIGSEGV, "TERM": SIGTERM, "USR1": SIGUSR1,
        "USR2": SIGUSR2,
    ]

    public static func name(of number: Int32) -> String {
        byName.first { $0.value == number }?.key ?? "SIG\(number)"
    }
}
