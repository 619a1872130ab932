import CSpawn
import Foundation

/// Descriptor-level calls Swift's Glibc module hides or that every caller must get right the same
/// way: pipe capacity, accepting close-on-exec, durable writes, and the process's own hardening.
public enum Descriptors {
    /// Grows a pipe's buffer (Linux's `F_SETPIPE_SZ`; 64 KiB by default), best effort: the kernel
    /// caps it at `/proc/sys/fs/pipe-max-size`.
    public static func setPipeSize(_ fd: Int32, _ bytes: Int32) {
        _ = flare_set_pipe_size(fd, bytes)
    }

    /// Accepts on a TCP or Unix listener, close-on-exec; nil when nothing waits or on an error.
    public static func accept(_ listener: Int32) -> Int32? {
        let fd = CSpawn.accept4(listener, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        return fd >= 0 ? fd : nil
    }

    /// Flushes a file's data and metadata to disk.
    public static func sync(_ fd: Int32) -> Bool {
        fsync(fd) == 0
    }

    /// Makes a rename or a new file in `directory` durable (its entry is on disk, not only the file).
    public static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    /// Keeps this process's secrets (a token in its environment, its memory) from other processes
    /// of the same uid: the process becomes non-dumpable, so they cannot ptrace it or read its
    /// `/proc` files.
    public static func hideFromSameUserProcesses() {
        _ = flare_set_undumpable()
    }
}
