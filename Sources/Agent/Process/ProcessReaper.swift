import Foundation

/// Collects children whose channel went away before they exited, so none is left a zombie.
///
/// The child gets SIGHUP (as a terminal hang-up would send), then SIGKILL if it is still there
/// after the grace period; a background thread waits for it.
enum ProcessReaper {
    static func hangUp(_ pid: pid_t, grace: TimeInterval = 5) {
        kill(-pid, SIGHUP)
        kill(pid, SIGHUP)
        let thread = Thread {
            let deadline = Date().addingTimeInterval(grace)
            var status: Int32 = 0
            while Date() < deadline {
                if waitpid(pid, &status, WNOHANG) == pid { return }
                usleep(20_000)
            }
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
        }
        thread.name = "flare-reaper-\(pid)"
        thread.start()
    }
}
