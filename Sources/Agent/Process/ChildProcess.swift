import CSpawn
import FlareSSH
import Foundation

/// A command the agent runs for a channel: a shell or `sh -c COMMAND`, on pipes or a PTY.
///
/// The parent's ends are non-blocking and close-on-exec; the child starts with default signal
/// handling, an empty signal mask and its own session (so a PTY becomes its controlling terminal).
final class ChildProcess {
    /// What the child's standard streams are connected to.
    enum IO {
        case pipes
        case terminal(TerminalSize)
    }

    let pid: pid_t
    /// Write end of the child's stdin (pipes) or the PTY master (terminal).
    let input: Int32
    /// Read end of the child's stdout (pipes) or the PTY master (terminal).
    let output: Int32
    /// Read end of the child's stderr; -1 for a terminal.
    let errorOutput: Int32
    let isTerminal: Bool

    struct SpawnError: Error, CustomStringConvertible {
        let description: String
    }

    /// Starts `executable` (a full path) with `arguments` (argv, including argv[0]) and
    /// `environment`, in `directory`.
    init(executable: String, arguments: [String], environment: [String: String], directory: String, io: IO) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGDEF) | Int16(POSIX_SPAWN_SETSIGMASK) | flare_spawn_setsid_flag())
        posix_spawn_file_actions_addchdir_np(&actions, directory)

        var childEnds: [Int32] = []
        defer { childEnds.forEach { close($0) } }
        switch io {
        case .pipes:
            let stdinPipe = try Self.pipe(), stdoutPipe = try Self.pipe(), stderrPipe = try Self.pipe()
            childEnds = [stdinPipe.read, stdoutPipe.write, stderrPipe.write]
            posix_spawn_file_actions_adddup2(&actions, stdinPipe.read, 0)
            posix_spawn_file_actions_adddup2(&actions, stdoutPipe.write, 1)
            posix_spawn_file_actions_adddup2(&actions, stderrPipe.write, 2)
            input = stdinPipe.write
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
            Self.resize(master: master, to: size)
            // Opened in the child after setsid(), without O_NOCTTY: it becomes the controlling tty.
            posix_spawn_file_actions_addopen(&actions, 0, slavePath, O_RDWR, 0)
            posix_spawn_file_actions_adddup2(&actions, 0, 1)
            posix_spawn_file_actions_adddup2(&actions, 0, 2)
            input = master
            output = master
            errorOutput = -1
            isTerminal = true
        }

        // Like sshd: the command gets stdin, stdout and stderr and nothing else the agent holds.
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)

        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            [input, output, errorOutput].filter { $0 >= 0 }.forEach { close($0) }
            throw SpawnError(description: "could not start \(executable): \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        for fd in Set([input, output, errorOutput]) where fd >= 0 {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
    }

    /// Sets the terminal size (and sends SIGWINCH to the foreground group).
    func resize(to size: TerminalSize) {
        guard isTerminal else { return }
        Self.resize(master: input, to: size)
    }

    /// Sends `signal` to the child's process group (the child leads its own session).
    func signal(_ signal: Int32) {
        kill(-pid, signal)
    }

    /// Non-blocking check for exit.
    func pollExit() -> ExitStatus? {
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
        // 1 MiB instead of 64 KiB: bulk transfers then rarely wait on a full pipe (best effort;
        // the kernel caps it at /proc/sys/fs/pipe-max-size).
        _ = flare_set_pipe_size(fds[1], 1 << 20)
        return (fds[0], fds[1])
    }
}

/// How a child ended, as SSH reports it.
enum ExitStatus: Equatable {
    case exited(Int32)
    case signaled(name: String, coreDumped: Bool)

    init(waitStatus status: Int32) {
        if flare_wifsignaled(status) != 0 {
            let number = flare_wtermsig(status)
            self = .signaled(name: Signals.name(of: number), coreDumped: flare_wcoredump(status) != 0)
        } else {
            self = .exited(flare_wexitstatus(status))
        }
    }
}

/// Signal names as SSH's `signal` and `exit-signal` messages spell them (no `SIG` prefix).
enum Signals {
    static let byName: [String: Int32] = [
        "ABRT": SIGABRT, "ALRM": SIGALRM, "FPE": SIGFPE, "HUP": SIGHUP, "ILL": SIGILL, "INT": SIGINT,
        "KILL": SIGKILL, "PIPE": SIGPIPE, "QUIT": SIGQUIT, "SEGV": SIGSEGV, "TERM": SIGTERM, "USR1": SIGUSR1,
        "USR2": SIGUSR2,
    ]

    static func name(of number: Int32) -> String {
        byName.first { $0.value == number }?.key ?? "SIG\(number)"
    }
}
