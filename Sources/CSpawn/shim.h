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
#endif
