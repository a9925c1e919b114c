#ifndef PGFLOW_SPAWN_H
#define PGFLOW_SPAWN_H
#include <sys/types.h>

/// Starts the executable at `path` with `argv` and `envp`, in a new process group whose id is its pid,
/// with stdin/stdout/stderr on the given descriptors, and with SIGKILL as its parent-death signal so
/// that it dies with the calling thread (an agent killed with -9 leaves no orphan running a claimed
/// flow). Returns the pid, or -1 with errno set (also when execve failed).
pid_t pgflow_spawn(const char *path, const char *const argv[], const char *const envp[], int stdin_fd, int stdout_fd,
                   int stderr_fd);

/// pipe2(fds, O_CLOEXEC).
int pgflow_pipe_cloexec(int fds[2]);

/// 1 when `pid` has exited (without reaping it), else 0.
int pgflow_child_exited(pid_t pid);

#endif
