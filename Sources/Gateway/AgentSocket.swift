import Foundation

/// Connects to a session agent's Unix socket without trusting the directory it is in.
///
/// The socket sits in a directory the session can reach, so whatever is at that path may have
/// been planted: a symlink to the Docker socket, a regular file, a directory. The path is opened
/// with `O_PATH | O_NOFOLLOW`, which pins the inode actually there without following a link; the
/// pinned inode must be a socket; the connection then goes to that very inode through
/// `/proc/self/fd`, so nothing can be swapped in between the check and the connect. A hard link
/// can only name a socket the session could already reach from inside.
public enum AgentSocket {
    public struct ConnectError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Linux's `O_PATH` (hidden behind `_GNU_SOURCE` in Swift's Glibc module).
    static let pathOnly: Int32 = 0o10000000

    /// A connected, blocking, close-on-exec stream socket.
    public static func connect(path: String) throws -> Int32 {
        let pinned = open(path, Self.pathOnly | O_NOFOLLOW | O_CLOEXEC)
        guard pinned >= 0 else {
            throw ConnectError(description: "the agent's socket is not there (\(String(cString: strerror(errno))))")
        }
        defer { close(pinned) }
        var info = stat()
        guard fstat(pinned, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK else {
            throw ConnectError(description: "refused the agent endpoint: it is not a socket (a link or file was put there)")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ConnectError(description: "socket() failed: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let viaDescriptor = "/proc/self/fd/\(pinned)"
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: viaDescriptor.utf8)
            raw[viaDescriptor.utf8.count] = 0
        }
        // Non-blocking for the connect alone: an agent whose backlog is full answers EAGAIN
        // instead of holding the gateway's thread.
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let reason = errno == EAGAIN ? "the agent is not accepting connections" : String(cString: strerror(errno))
            close(fd)
            throw ConnectError(description: "cannot connect to the agent: \(reason)")
        }
        _ = fcntl(fd, F_SETFL, flags)
        return fd
    }
}
