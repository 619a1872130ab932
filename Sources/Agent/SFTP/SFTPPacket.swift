import Foundation

/// SFTP v3 message types and status codes (draft-ietf-secsh-filexfer-02).
enum SFTPType: UInt8 {
    case initialize = 1, version = 2, open = 3, close = 4, read = 5, write = 6, lstat = 7, fstat = 8
    case setstat = 9, fsetstat = 10, opendir = 11, readdir = 12, remove = 13, mkdir = 14, rmdir = 15
    case realpath = 16, stat = 17, rename = 18, readlink = 19, symlink = 20
    case status = 101, handle = 102, data = 103, name = 104, attrs = 105
    case extended = 200, extendedReply = 201
}

enum SFTPStatus: UInt32 {
    case ok = 0, eof = 1, noSuchFile = 2, permissionDenied = 3, failure = 4, badMessage = 5
    case unsupported = 8
}

/// Reads the fields of one SFTP packet body.
struct SFTPReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    struct Truncated: Error {}

    mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw Truncated() }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint32() throws -> UInt32 {
        guard bytes.count - offset >= 4 else { throw Truncated() }
        defer { offset += 4 }
        return bytes[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func uint64() throws -> UInt64 {
        UInt64(try uint32()) << 32 | UInt64(try uint32())
    }

    mutating func data() throws -> ArraySlice<UInt8> {
        let length = Int(try uint32())
        guard bytes.count - offset >= length else { throw Truncated() }
        defer { offset += length }
        return bytes[offset..<offset + length]
    }

    mutating func string() throws -> String {
        String(decoding: try data(), as: UTF8.self)
    }

    mutating func attributes() throws -> SFTPAttributes {
        var attributes = SFTPAttributes()
        let flags = try uint32()
        if flags & SFTPAttributes.sizeFlag != 0 { attributes.size = try uint64() }
        if flags & SFTPAttributes.ownerFlag != 0 { attributes.owner = (try uint32(), try uint32()) }
        if flags & SFTPAttributes.permissionsFlag != 0 { attributes.permissions = try uint32() }
        if flags & SFTPAttributes.timesFlag != 0 { attributes.times = (try uint32(), try uint32()) }
        if flags & SFTPAttributes.extendedFlag != 0 {
            for _ in 0..<(try uint32()) { _ = try data(); _ = try data() }
        }
        return attributes
    }
}

/// Builds one SFTP packet (length prefix added by ``packet``).
struct SFTPWriter {
    private(set) var bytes: [UInt8] = [0, 0, 0, 0]

    init(_ type: SFTPType) { bytes.append(type.rawValue) }

    mutating func uint32(_ value: UInt32) {
        bytes.append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff),
                                  UInt8(value & 0xff)])
    }

    mutating func uint64(_ value: UInt64) {
        uint32(UInt32(value >> 32))
        uint32(UInt32(value & 0xffff_ffff))
    }

    mutating func data(_ value: some Collection<UInt8>) {
        uint32(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func string(_ value: String) { data(Array(value.utf8)) }

    mutating func attributes(_ attributes: SFTPAttributes) {
        var flags: UInt32 = 0
        if attributes.size != nil { flags |= SFTPAttributes.sizeFlag }
        if attributes.owner != nil { flags |= SFTPAttributes.ownerFlag }
        if attributes.permissions != nil { flags |= SFTPAttributes.permissionsFlag }
        if attributes.times != nil { flags |= SFTPAttributes.timesFlag }
        uint32(flags)
        if let size = attributes.size { uint64(size) }
        if let (uid, gid) = attributes.owner { uint32(uid); uint32(gid) }
        if let permissions = attributes.permissions { uint32(permissions) }
        if let (atime, mtime) = attributes.times { uint32(atime); uint32(mtime) }
    }

    /// The finished packet with its length.
    var packet: [UInt8] {
        var result = bytes
        let length = UInt32(result.count - 4)
        result[0] = UInt8(length >> 24)
        result[1] = UInt8(length >> 16 & 0xff)
        result[2] = UInt8(length >> 8 & 0xff)
        result[3] = UInt8(length & 0xff)
        return result
    }
}

/// File attributes as SFTP v3 carries them; nil fields are absent.
struct SFTPAttributes {
    static let sizeFlag: UInt32 = 0x1, ownerFlag: UInt32 = 0x2, permissionsFlag: UInt32 = 0x4
    static let timesFlag: UInt32 = 0x8, extendedFlag: UInt32 = 0x8000_0000

    var size: UInt64?
    var owner: (UInt32, UInt32)?
    var permissions: UInt32?
    var times: (UInt32, UInt32)?

    init() {}

    init(_ info: stat) {
        size = UInt64(max(0, info.st_size))
        owner = (info.st_uid, info.st_gid)
        permissions = info.st_mode
        times = (UInt32(truncatingIfNeeded: info.st_atim.tv_sec), UInt32(truncatingIfNeeded: info.st_mtim.tv_sec))
    }
}
