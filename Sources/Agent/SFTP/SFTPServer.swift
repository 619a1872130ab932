import FlareSystem
import Foundation

/// An SFTP v3 server on stdin/stdout, for images without OpenSSH's `sftp-server`: the agent runs
/// it as `flare-agent sftp-server` for the `sftp` subsystem, so `sftp` and OpenSSH 9's `scp` work
/// everywhere. Paths are the session user's own; it runs as that user in their HOME.
public final class SFTPServer {
    private enum Handle {
        case file(Int32)
        case directory(path: String, entries: [String])
    }

    private let input: Int32
    private let output: Int32
    private var handles: [String: Handle] = [:]
    private var nextHandle = 0
    private var buffer: [UInt8] = []
    private var outgoing: [UInt8] = []

    public init(input: Int32 = 0, output: Int32 = 1) {
        self.input = input
        self.output = output
    }

    /// Serves until the client closes stdin.
    public func run() {
        signal(SIGPIPE, SIG_IGN)
        umask(0o022)
        var chunk = [UInt8](repeating: 0, count: 256 * 1024)
        while true {
            while let packet = nextPacket() { handle(packet) }
            flush()
            let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            buffer.append(contentsOf: chunk[0..<n])
        }
        for case .file(let fd) in handles.values { close(fd) }
    }

    private func nextPacket() -> [UInt8]? {
        guard buffer.count >= 4 else { return nil }
        let length = Int(buffer[0..<4].reduce(0) { $0 << 8 | UInt32($1) })
        guard buffer.count >= 4 + length else { return nil }
        let packet = Array(buffer[4..<4 + length])
        buffer.removeFirst(4 + length)
        return packet
    }

    private func send(_ writer: SFTPWriter) {
        outgoing.append(contentsOf: writer.packet)
        if outgoing.count > 256 * 1024 { flush() }
    }

    private func flush() {
        var offset = 0
        while offset < outgoing.count {
            let n = outgoing.withUnsafeBytes { write(output, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            offset += n
        }
        outgoing.removeAll(keepingCapacity: true)
    }

    private func handle(_ packet: [UInt8]) {
        var reader = SFTPReader(packet)
        guard let raw = try? reader.byte(), let type = SFTPType(rawValue: raw) else { return }
        if type == .initialize {
            var reply = SFTPWriter(.version)
            reply.uint32(3)
            for (name, version) in [("posix-rename@openssh.com", "1"), ("fsync@openssh.com", "1"),
                                    ("hardlink@openssh.com", "1")] {
                reply.string(name)
                reply.string(version)
            }
            return send(reply)
        }
        guard let id = try? reader.uint32() else { return }
        do {
            try dispatch(type, id: id, &reader)
        } catch is SFTPReader.Truncated {
            status(id, .badMessage, "malformed request")
        } catch {
            status(id, .failure, "\(error)")
        }
    }

    private func dispatch(_ type: SFTPType, id: UInt32, _ reader: inout SFTPReader) throws {
        switch type {
        case .open:
            let path = try reader.string(), flags = try reader.uint32(), attributes = try reader.attributes()
            var mode = Int32(0)
            switch flags & 3 {
            case 1: mode = O_RDONLY
            case 2: mode = O_WRONLY
            default: mode = O_RDWR
            }
            if flags & 0x4 != 0 { mode |= O_APPEND }
            if flags & 0x8 != 0 { mode |= O_CREAT }
            if flags & 0x10 != 0 { mode |= O_TRUNC }
            if flags & 0x20 != 0 { mode |= O_EXCL }
            let fd = open(path, mode | O_CLOEXEC, mode_t(attributes.permissions.map { $0 & 0o7777 } ?? 0o666))
            guard fd >= 0 else { return errnoStatus(id) }
            sendHandle(id, .file(fd))
        case .close:
            let key = try reader.string()
            guard let handle = handles.removeValue(forKey: key) else { return status(id, .failure, "no such handle") }
            if case .file(let fd) = handle, close(fd) != 0 { return errnoStatus(id) }
            status(id, .ok)
        case .read:
            let key = try reader.string(), offset = try reader.uint64(), length = min(Int(try reader.uint32()), 256 * 1024)
            guard case .file(let fd)? = handles[key] else { return status(id, .failure, "no such handle") }
            var data = [UInt8](repeating: 0, count: length)
            let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, length, off_t(offset)) }
            guard n >= 0 else { return errnoStatus(id) }
            guard n > 0 else { return status(id, .eof) }
            var reply = SFTPWriter(.data)
            reply.uint32(id)
            reply.data(data[0..<n])
            send(reply)
        case .write:
            let key = try reader.string(), offset = try reader.uint64(), data = try reader.data()
            guard case .file(let fd)? = handles[key] else { return status(id, .failure, "no such handle") }
            var written = 0
            while written < data.count {
                let n = data.withUnsafeBytes { pwrite(fd, $0.baseAddress! + written, $0.count - written,
                                                      off_t(offset) + off_t(written)) }
                guard n > 0 else { return errnoStatus(id) }
                written += n
            }
            status(id, .ok)
        case .stat, .lstat:
            let path = try reader.string()
            var info = Glibc.stat()
            let rc = type == .stat ? stat(path, &info) : lstat(path, &info)
            guard rc == 0 else { return errnoStatus(id) }
            sendAttributes(id, SFTPAttributes(info))
        case .fstat:
            guard case .file(let fd)? = handles[try reader.string()] else { return status(id, .failure, "no such handle") }
            var info = Glibc.stat()
            guard fstat(fd, &info) == 0 else { return errnoStatus(id) }
            sendAttributes(id, SFTPAttributes(info))
        case .setstat:
            let path = try reader.string()
            try apply(try reader.attributes(), id: id, path: path, fd: nil)
        case .fsetstat:
            guard case .file(let fd)? = handles[try reader.string()] else { return status(id, .failure, "no such handle") }
            try apply(try reader.attributes(), id: id, path: nil, fd: fd)
        case .opendir:
            let path = try reader.string()
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else {
                return errnoStatus(id, fallback: .noSuchFile)
            }
            sendHandle(id, .directory(path: path, entries: [".", ".."] + entries.sorted()))
        case .readdir:
            let key = try reader.string()
            guard case .directory(let path, let entries)? = handles[key] else {
                return status(id, .failure, "no such handle")
            }
            guard !entries.isEmpty else { return status(id, .eof) }
            let batch = entries.prefix(100)
            handles[key] = .directory(path: path, entries: Array(entries.dropFirst(batch.count)))
            var reply = SFTPWriter(.name)
            reply.uint32(id)
            reply.uint32(UInt32(batch.count))
            for name in batch {
                var info = Glibc.stat()
                let exists = lstat(path + "/" + name, &info) == 0
                reply.string(name)
                reply.string(exists ? Self.longName(name, info) : name)
                reply.attributes(exists ? SFTPAttributes(info) : SFTPAttributes())
            }
            send(reply)
        case .remove:
            unlink(try reader.string()) == 0 ? status(id, .ok) : errnoStatus(id)
        case .mkdir:
            let path = try reader.string(), attributes = try reader.attributes()
            mkdir(path, mode_t(attributes.permissions.map { $0 & 0o7777 } ?? 0o777)) == 0 ? status(id, .ok) : errnoStatus(id)
        case .rmdir:
            rmdir(try reader.string()) == 0 ? status(id, .ok) : errnoStatus(id)
        case .realpath:
            let path = try reader.string()
            let resolved = Self.resolve(path.isEmpty ? "." : path)
            sendName(id, resolved, longName: resolved)
        case .rename:
            let from = try reader.string(), to = try reader.string()
            // v3 rename must not replace an existing file.
            var info = Glibc.stat()
            if lstat(to, &info) == 0 { return status(id, .failure, "\(to) exists") }
            rename(from, to) == 0 ? status(id, .ok) : errnoStatus(id)
        case .readlink:
            let path = try reader.string()
            var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &target, target.count - 1)
            guard n >= 0 else { return errnoStatus(id) }
            let text = String(nulTerminated: Array(target[0..<n]) + [0])
            sendName(id, text, longName: text)
        case .symlink:
            // OpenSSH's sftp-server (and so its clients) send the arguments in the reverse order.
            let target = try reader.string(), link = try reader.string()
            symlink(target, link) == 0 ? status(id, .ok) : errnoStatus(id)
        case .extended:
            try extended(id: id, name: try reader.string(), &reader)
        default:
            status(id, .unsupported, "unsupported request")
        }
    }

    private func extended(id: UInt32, name: String, _ reader: inout SFTPReader) throws {
        switch name {
        case "posix-rename@openssh.com":
            let from = try reader.string(), to = try reader.string()
            rename(from, to) == 0 ? status(id, .ok) : errnoStatus(id)
        case "hardlink@openssh.com":
            let from = try reader.string(), to = try reader.string()
            link(from, to) == 0 ? status(id, .ok) : errnoStatus(id)
        case "fsync@openssh.com":
            guard case .file(let fd)? = handles[try reader.string()] else { return status(id, .failure, "no such handle") }
            Descriptors.sync(fd) ? status(id, .ok) : errnoStatus(id)
        default:
            status(id, .unsupported, "\(name) is not supported")
        }
    }

    private func apply(_ attributes: SFTPAttributes, id: UInt32, path: String?, fd: Int32?) throws {
        if let size = attributes.size {
            let rc = fd.map { ftruncate($0, off_t(size)) } ?? truncate(path!, off_t(size))
            guard rc == 0 else { return errnoStatus(id) }
        }
        if let permissions = attributes.permissions {
            let mode = mode_t(permissions & 0o7777)
            let rc = fd.map { fchmod($0, mode) } ?? chmod(path!, mode)
            guard rc == 0 else { return errnoStatus(id) }
        }
        if let (atime, mtime) = attributes.times {
            var times = [timespec(tv_sec: Int(atime), tv_nsec: 0), timespec(tv_sec: Int(mtime), tv_nsec: 0)]
            let rc = fd.map { futimens($0, &times) } ?? utimensat(AT_FDCWD, path!, &times, 0)
            guard rc == 0 else { return errnoStatus(id) }
        }
        if let (uid, gid) = attributes.owner {
            let rc = fd.map { fchown($0, uid, gid) } ?? chown(path!, uid, gid)
            guard rc == 0 else { return errnoStatus(id) }
        }
        status(id, .ok)
    }

    private func sendHandle(_ id: UInt32, _ handle: Handle) {
        nextHandle += 1
        let key = String(nextHandle)
        handles[key] = handle
        var reply = SFTPWriter(.handle)
        reply.uint32(id)
        reply.string(key)
        send(reply)
    }

    private func sendAttributes(_ id: UInt32, _ attributes: SFTPAttributes) {
        var reply = SFTPWriter(.attrs)
        reply.uint32(id)
        reply.attributes(attributes)
        send(reply)
    }

    private func sendName(_ id: UInt32, _ name: String, longName: String) {
        var reply = SFTPWriter(.name)
        reply.uint32(id)
        reply.uint32(1)
        reply.string(name)
        reply.string(longName)
        reply.attributes(SFTPAttributes())
        send(reply)
    }

    private func status(_ id: UInt32, _ code: SFTPStatus, _ message: String = "") {
        var reply = SFTPWriter(.status)
        reply.uint32(id)
        reply.uint32(code.rawValue)
        reply.string(message.isEmpty ? "\(code)" : message)
        reply.string("en")
        send(reply)
    }

    private func errnoStatus(_ id: UInt32, fallback: SFTPStatus = .failure) {
        let code = errno
        let mapped: SFTPStatus = switch code {
        case ENOENT, ENOTDIR: .noSuchFile
        case EACCES, EPERM: .permissionDenied
        default: fallback
        }
        status(id, mapped, String(cString: strerror(code)))
    }

    /// An absolute, normalized path; a path that does not exist yet keeps its last component.
    static func resolve(_ path: String) -> String {
        if let real = realpath(path, nil) {
            defer { free(real) }
            return String(cString: real)
        }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return (absolute as NSString).standardizingPath
    }

    /// `ls -l`-style line for `sftp`'s `ls -l`.
    static func longName(_ name: String, _ info: stat) -> String {
        let mode = info.st_mode
        let kinds: [(mode_t, Character)] = [(S_IFDIR, "d"), (S_IFLNK, "l"), (S_IFCHR, "c"), (S_IFBLK, "b"),
                                            (S_IFIFO, "p"), (S_IFSOCK, "s")]
        var text = String(kinds.first { mode & S_IFMT == $0.0 }?.1 ?? "-")
        for (bit, letter) in zip([0o400, 0o200, 0o100, 0o40, 0o20, 0o10, 0o4, 0o2, 0o1] as [mode_t], "rwxrwxrwx") {
            text.append(mode & bit != 0 ? letter : "-")
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "MMM dd HH:mm"
        let date = formatter.string(from: Date(timeIntervalSince1970: TimeInterval(info.st_mtim.tv_sec)))
        return "\(text) \(String(format: "%4d", Int(info.st_nlink))) \(info.st_uid) \(info.st_gid) "
            + "\(String(format: "%10lld", Int64(info.st_size))) \(date) \(name)"
    }
}
