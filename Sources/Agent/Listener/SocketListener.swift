import FlareSystem
import Foundation

/// A listening socket (Unix or TCP) whose accepted descriptors are handed to libssh.
final class SocketListener: @unchecked Sendable {
    struct ListenError: Error, CustomStringConvertible {
        let description: String
    }

    private let descriptor: Int32
    /// The bound address, with the real port when 0 was asked for.
    let address: ListenAddress
    private let lock = NSLock()
    private var closed = false

    init(_ address: ListenAddress) throws {
        switch address {
        case .unix(let path):
            do {
                descriptor = try UnixSocket.listen(path: path, backlog: 128, mode: 0o660)
            } catch {
                throw ListenError(description: "\(error)")
            }
            self.address = address
        case .tcp(let host, let port):
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST
            var info: UnsafeMutablePointer<addrinfo>?
            guard getaddrinfo(host, String(port), &hints, &info) == 0, let first = info else {
                throw ListenError(description: "not a numeric address: \(host)")
            }
            defer { freeaddrinfo(info) }
            let fd = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Self.error("socket") }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0, listen(fd, 512) == 0 else {
                let e = Self.error("bind \(host):\(port)")
                Glibc.close(fd)
                throw e
            }
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            _ = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            let family = storage.ss_family
            let boundPort = withUnsafePointer(to: &storage) { pointer -> Int in
                if family == sa_family_t(AF_INET6) {
                    return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                        Int(UInt16(bigEndian: $0.pointee.sin6_port))
                    }
                }
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    Int(UInt16(bigEndian: $0.pointee.sin_port))
                }
            }
            descriptor = fd
            self.address = .tcp(host: host, port: boundPort)
        }
    }

    /// The listening descriptor, for watching it in an event loop.
    var fileDescriptor: Int32 { descriptor }

    /// Makes ``acceptNow()`` usable from an event loop.
    func setNonBlocking() {
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    /// A pending connection if there is one (non-blocking listeners).
    func acceptNow() -> Int32? {
        Descriptors.accept(descriptor)
    }

    /// Blocks until a client connects; nil once the listener is closed.
    func accept() -> Int32? {
        while true {
            if let fd = Descriptors.accept(descriptor) { return fd }
            if errno == EINTR || errno == ECONNABORTED { continue }
            if lock.withLock({ closed }) { return nil }
            if errno == EMFILE || errno == ENFILE {
                usleep(50_000)
                continue
            }
            return nil
        }
    }

    /// Stops accepting; a blocked ``accept()`` returns nil.
    func close() {
        let first = lock.withLock { () -> Bool in
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        shutdown(descriptor, Int32(SHUT_RDWR))
        Glibc.close(descriptor)
        if case .unix(let path) = address { unlink(path) }
    }

    private static func error(_ what: String) -> ListenError {
        ListenError(description: "\(what): \(String(cString: strerror(errno)))")
    }
}
