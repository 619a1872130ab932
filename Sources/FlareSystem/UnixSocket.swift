import CSpawn
import Foundation

/// Unix stream sockets: the one helper for listening on a path and for connecting to one, used
/// by the agent (its SSH and agent-forwarding listeners), the gateway (connecting to agents) and
/// the tests. Every descriptor is close-on-exec.
public enum UnixSocket {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Linux's `O_PATH` (hidden behind `_GNU_SOURCE` in Swift's Glibc module).
    static let pathOnly: Int32 = 0o10000000

    /// A blocking socket listening at `path` (whatever was there is replaced), with `mode` when given.
    public static func listen(path: String, backlog: Int32 = 128, mode: mode_t? = nil) throws -> Int32 {
        let fd = try stream()
        unlink(path)
        let bound = try withAddress(path) { bind(fd, $0, $1) }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let failure = Failure(description: "cannot listen on \(path): \(String(cString: strerror(errno)))")
            close(fd)
            throw failure
        }
        if let mode { chmod(path, mode) }
        return fd
    }

    /// A connected, blocking socket to the socket at `path`, which is trusted no more than the
    /// directory it is in: whatever is there may have been planted (a symlink to the Docker
    /// socket, a regular file, a directory). The path is opened with `O_PATH | O_NOFOLLOW`, which
    /// pins the inode actually there without following a link; it must be a socket; the connection
    /// then goes to that very inode through `/proc/self/fd`, so nothing can be swapped in between
    /// the check and the connect. A hard link can only name a socket the caller's peer could
    /// already reach. The connect itself does not block: a listener whose backlog is full is an
    /// error at once, not a held thread.
    /// `what` names the socket in errors (`the agent's socket`).
    public static func connect(path: String, what: String = "the socket") throws -> Int32 {
        let pinned = open(path, pathOnly | O_NOFOLLOW | O_CLOEXEC)
        guard pinned >= 0 else {
            throw Failure(description: "\(what) is not there (\(String(cString: strerror(errno))))")
        }
        defer { close(pinned) }
        var info = stat()
        guard fstat(pinned, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else {
            throw Failure(description: "refused \(what): it is not a socket (a link or file was put there)")
        }
        let fd = try stream()
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let result = try withAddress("/proc/self/fd/\(pinned)") { Glibc.connect(fd, $0, $1) }
        guard result == 0 else {
            let reason = errno == EAGAIN ? "it is not accepting connections" : String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "cannot connect to \(what): \(reason)")
        }
        _ = fcntl(fd, F_SETFL, flags)
        return fd
    }

    private static func stream() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket() failed: \(String(cString: strerror(errno)))") }
        return fd
    }

    /// Runs `body` with `path` as a `sockaddr_un`, refusing a path too long for one.
    private static func withAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) throws -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Failure(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
