import CLibSSH
import Foundation

/// Process-wide libssh set-up, done once before any session exists.
///
/// `ssh_init` initialises libssh's crypto back end; calling it lazily from several threads at once
/// races, so every entry point of this module goes through ``SSHLibrary/ensureInitialized()``.
public enum SSHLibrary {
    private static let initialized: Bool = {
        _ = ssh_init()
        return true
    }()

    /// Initialises libssh exactly once for the process; cheap after the first call.
    public static func ensureInitialized() {
        _ = initialized
    }

    /// The libssh version string, e.g. `0.10.6/openssl/zlib`.
    public static var version: String {
        String(cString: ssh_version(0))
    }
}

/// Marks `fd` close-on-exec: libssh opens its sockets without it, and a spawned shell must not
/// inherit the listening or session sockets.
func setCloseOnExec(_ fd: Int32) {
    guard fd >= 0 else { return }
    let flags = fcntl(fd, F_GETFD)
    if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
}
