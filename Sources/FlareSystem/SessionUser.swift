import Foundation

/// The account a session's shells, commands and sftp run as when the agent itself runs as root:
/// privilege separation as sshd does it. The agent keeps its token, host key and sockets out of
/// this user's reach; every child drops to it before `exec`.
public struct SessionUser: Sendable, Equatable {
    public var name: String
    public var uid: uid_t
    public var gid: gid_t
    /// Supplementary groups, as `initgroups` would set them.
    public var groups: [gid_t]
    public var home: String
    public var shell: String

    public struct LookupError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads `name` from the session's user database; refuses root (there would be nothing to drop).
    public static func lookup(_ name: String) throws -> SessionUser {
        guard let entry = getpwnam(name) else {
            throw LookupError(description: "the session user '\(name)' does not exist in the image")
        }
        let pw = entry.pointee
        guard pw.pw_uid != 0, pw.pw_gid != 0 else {
            throw LookupError(description: "the session user '\(name)' is root or in group root; "
                + "shells must run unprivileged")
        }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(pw.pw_name, pw.pw_gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            _ = getgrouplist(pw.pw_name, pw.pw_gid, &groups, &count)
        }
        return SessionUser(
            name: String(cString: pw.pw_name), uid: pw.pw_uid, gid: pw.pw_gid,
            groups: Array(groups.prefix(Int(max(0, count)))).filter { $0 != 0 },
            home: pw.pw_dir.map { String(cString: $0) } ?? "/home/\(name)",
            shell: pw.pw_shell.map { String(cString: $0) } ?? "/bin/sh")
    }

    /// Gives `path` (a file or directory the agent made for the user) to the user, without
    /// following a link.
    public func own(_ path: String) {
        _ = lchown(path, uid, gid)
    }
}
