#ifndef FLARE_CSPAWN_SHIM_H
#define FLARE_CSPAWN_SHIM_H

#include <spawn.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <stdlib.h>

// glibc's GNU extensions to posix_spawn, hidden from Swift's Glibc module (no _GNU_SOURCE there).
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);
// glibc >= 2.34: the child closes every descriptor from `from` up, whatever the agent inherited.
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);

// PTY and accept4 declarations that Swift's Glibc module hides behind feature macros.
extern int posix_openpt(int flags);
extern int grantpt(int fd);
extern int unlockpt(int fd);
extern char *ptsname(int fd);
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);

/// POSIX_SPAWN_SETSID (glibc >= 2.26): the child starts a new session before the file actions run,
/// so opening a PTY slave in a file action makes it the controlling terminal.
static inline short flare_spawn_setsid_flag(void) { return 0x80; }

// Linux pipe capacity (F_SETPIPE_SZ is a GNU extension Swift's Glibc module does not show).
#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif
#include <fcntl.h>
static inline int flare_set_pipe_size(int fd, int size) { return fcntl(fd, F_SETPIPE_SZ, size); }

// Wait-status macros are function-like and not imported.
static inline int flare_wifexited(int status) { return WIFEXITED(status); }
static inline int flare_wexitstatus(int status) { return WEXITSTATUS(status); }
static inline int flare_wifsignaled(int status) { return WIFSIGNALED(status); }
static inline int flare_wtermsig(int status) { return WTERMSIG(status); }
static inline int flare_wcoredump(int status) { return WCOREDUMP(status); }

#include <errno.h>
#include <string.h>
#include <grp.h>
#include <signal.h>
#include <unistd.h>

// glibc >= 2.34; hidden behind _GNU_SOURCE in Swift's Glibc module.
extern void closefrom(int lowfd);

/// What `flare_spawn` starts, and as whom.
struct flare_spawn_request {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *directory;
    /// Pipes: the child's ends, dup'ed to 0, 1 and 2. Unused when `tty_path` is set.
    int stdin_fd, stdout_fd, stderr_fd;
    /// A PTY slave, opened after setsid() so it becomes the controlling terminal.
    const char *tty_path;
    /// When non-zero the child drops to uid/gid and these supplementary groups before exec.
    int set_ids;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    /// When >= 0, handed to the child as descriptor 3 (an output file the child could not open).
    int extra_fd;
};

/// fork + exec that can drop privileges (posix_spawn cannot). The child runs only
/// async-signal-safe calls; a failure before exec comes back as an errno through a close-on-exec
/// pipe, so the caller gets the same error posix_spawn would have returned. Returns 0 or an errno.
static inline int flare_spawn(const struct flare_spawn_request *request, pid_t *pid_out) {
    int report[2];
    if (pipe(report) != 0) return errno;
    fcntl(report[0], F_SETFD, FD_CLOEXEC);
    fcntl(report[1], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close(report[0]);
        close(report[1]);
        return saved;
    }
    if (pid == 0) {
        int failure = 0;
        int reportfd = report[1];
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < 65; s++) sigaction(s, &dfl, NULL);
        sigset_t empty;
        sigemptyset(&empty);
        sigprocmask(SIG_SETMASK, &empty, NULL);
        if (setsid() < 0) { failure = errno; goto fail; }
        if (request->tty_path) {
            int tty = open(request->tty_path, O_RDWR);
            if (tty < 0) { failure = errno; goto fail; }
            if (dup2(tty, 0) < 0 || dup2(tty, 1) < 0 || dup2(tty, 2) < 0) { failure = errno; goto fail; }
        } else {
            if (dup2(request->stdin_fd, 0) < 0 || dup2(request->stdout_fd, 1) < 0
                || dup2(request->stderr_fd, 2) < 0) { failure = errno; goto fail; }
        }
        if (request->set_ids) {
            if (setgroups((size_t)request->group_count, request->groups) != 0) { failure = errno; goto fail; }
            if (setgid(request->gid) != 0) { failure = errno; goto fail; }
            if (setuid(request->uid) != 0) { failure = errno; goto fail; }
            // Never keep root by accident: a failed drop would have been caught above, and this
            // makes sure of it.
            if (request->uid != 0 && (setuid(0) == 0 || geteuid() == 0)) { failure = EPERM; goto fail; }
        }
        if (request->directory && chdir(request->directory) != 0) { failure = errno; goto fail; }
        // Keep the report pipe (close-on-exec) and the extra descriptor, nothing else the agent holds.
        int keep = request->extra_fd >= 0 ? 4 : 3;
        if (request->extra_fd >= 0) {
            int moved = fcntl(reportfd, F_DUPFD_CLOEXEC, 10);
            if (moved < 0) { failure = errno; goto fail; }
            reportfd = moved;
            if (dup2(request->extra_fd, 3) < 0) { failure = errno; goto fail; }
            fcntl(3, F_SETFD, 0);  // dup2 onto itself would have kept close-on-exec
        }
        if (reportfd != keep) {
            if (dup2(reportfd, keep) < 0) { failure = errno; goto fail; }
            reportfd = keep;
        }
        fcntl(keep, F_SETFD, FD_CLOEXEC);
        closefrom(keep + 1);
        execve(request->path, request->argv, request->envp);
        failure = errno;
    fail:
        {
            ssize_t ignored = write(reportfd, &failure, sizeof failure);
            (void)ignored;
        }
        _exit(127);
    }
    close(report[1]);
    int failure = 0;
    ssize_t got;
    do { got = read(report[0], &failure, sizeof failure); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof failure) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        return failure;
    }
    *pid_out = pid;
    return 0;
}
#include <sys/prctl.h>
/// Makes the calling process non-dumpable: a process of the same uid can no longer read its
/// /proc files (environ, memory) or ptrace it. Execs reset it, so the children are unaffected.
static inline int flare_set_undumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }
#endif
