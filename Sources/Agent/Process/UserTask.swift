import FlareSystem
import Foundation

/// Work a root agent hands to a child running as the session's user, as sshd hands a session to
/// an unprivileged child: snapshot creation and restore walk directories the user can change
/// while they run, so they must not run with more rights than the user has.
///
/// The child is the agent's own executable (`/proc/self/exe`) with a subcommand. It gets the
/// descriptors the agent opened for it (the downloaded archive as standard input, an output file
/// as descriptor 3), so it never needs to open the agent's own files. Blocking.
enum UserTask {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs `flare-agent ARGUMENTS` as `user` and returns its standard output; throws with its
    /// last line on standard error when it does not exit 0. The user can stop their own child: past
    /// `timeout` it is killed, so the agent is never held by it.
    static func run(_ arguments: [String], as user: SessionUser, input: Int32, extra: Int32 = -1,
                    timeout: Duration = .seconds(30 * 60)) throws -> Data {
        let child: ChildProcess
        do {
            child = try ChildProcess(executable: agent.executable, arguments: agent.prefix + arguments,
                                     environment: ["PATH": "/usr/bin:/bin"], directory: "/",
                                     io: .descriptors(stdin: input, extra: extra), user: user)
        } catch {
            throw Failure(description: "\(error)")
        }
        defer {
            close(child.output)
            close(child.errorOutput)
        }
        var output = Data(), errors = Data()
        let finished = drain(child.output, into: &output, limit: 64 << 20, and: child.errorOutput, into: &errors,
                             limit: 64 << 10, until: ContinuousClock.now + timeout)
        if !finished { kill(child.pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
        switch ExitStatus(waitStatus: status) {
        case .exited(0):
            return output
        case .exited(let code):
            let message = String(decoding: errors, as: UTF8.self)
                .split(separator: "\n").last.map(String.init)?
                .replacingOccurrences(of: "error: ", with: "") ?? "exit status \(code)"
            throw Failure(description: message)
        case .signaled(let name, _):
            if !finished {
                throw Failure(description: "the \(arguments.first ?? "task") process as \(user.name) took longer than "
                    + "\(timeout.components.seconds) s and was stopped")
            }
            throw Failure(description: "the \(arguments.first ?? "task") process as \(user.name) was killed by SIG\(name)")
        }
    }

    /// How to start this agent again: itself, or (in a container, where the agent brings its own
    /// libraries) the dynamic loader it was started through, with the same library path.
    static let agent: (executable: String, prefix: [String]) = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        guard (exe as NSString).lastPathComponent.hasPrefix("ld-linux") else { return ("/proc/self/exe", ["flare-agent"]) }
        return (exe, [exe, "--library-path", (exe as NSString).deletingLastPathComponent, CommandLine.arguments[0]])
    }()

    /// Reads both (non-blocking) pipes until both reach end of file (true) or `deadline` passes
    /// (false); bytes past a limit are dropped.
    private static func drain(_ first: Int32, into firstData: inout Data, limit firstLimit: Int,
                              and second: Int32, into secondData: inout Data, limit secondLimit: Int,
                              until deadline: ContinuousClock.Instant) -> Bool {
        var open = [first: true, second: true]
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while open.values.contains(true) {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { return false }
            let milliseconds = Int32(min(left.components.seconds * 1000 + 1, 60_000))
            var fds = open.filter(\.value).map { pollfd(fd: $0.key, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), milliseconds) >= 0 || errno == EINTR else { return true }
            for polled in fds where polled.revents != 0 {
                let n = read(polled.fd, &buffer, buffer.count)
                if n > 0 {
                    if polled.fd == first, firstData.count < firstLimit { firstData.append(contentsOf: buffer[..<n]) }
                    if polled.fd == second, secondData.count < secondLimit { secondData.append(contentsOf: buffer[..<n]) }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    open[polled.fd] = false
                }
            }
        }
        return true
    }
}
