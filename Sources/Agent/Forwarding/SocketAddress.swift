import Foundation

/// Small blocking-with-timeout socket helpers for forwarding.
enum SocketAddress {
    /// Connects to `host:port` (name or address), giving up after `timeout`. Returns the socket.
    static func connect(host: String, port: Int, timeout: Duration = .seconds(10)) -> Int32? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var info: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &info) == 0 else { return nil }
        defer { freeaddrinfo(info) }
        var entry = info
        while let current = entry {
            defer { entry = current.pointee.ai_next }
            let fd = socket(current.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                            | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { continue }
            if Glibc.connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 { return fd }
            if errno == EINPROGRESS {
                var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                let milliseconds = Int32(timeout.components.seconds * 1000)
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if poll(&poller, 1, milliseconds) == 1,
                   getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0, error == 0
                {
                    return fd
                }
            }
            Glibc.close(fd)
        }
        return nil
    }

    /// The numeric address and port of the peer of `fd` (port 0 for a Unix socket).
    static func peer(of fd: Int32) -> (String, Int) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) == 0 }
        }
        guard ok, storage.ss_family != sa_family_t(AF_UNIX) else { return ("127.0.0.1", 0) }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var port = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &port, socklen_t(port.count),
                            NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        return rc == 0 ? (String(nulTerminated: host), Int(String(nulTerminated: port)) ?? 0) : ("127.0.0.1", 0)
    }
}
