import Foundation

/// A listening Unix stream socket at `path` (a test's stand-in server); the caller closes it.
func listeningUnixSocket(path: String, backlog: Int32 = 8) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: path.utf8)
        raw[path.utf8.count] = 0
    }
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard fd >= 0, bound == 0, listen(fd, backlog) == 0 else {
        if fd >= 0 { close(fd) }
        throw FixtureError("cannot listen on \(path)")
    }
    return fd
}
