#ifndef PGFLOW_SPAWN_H
#define PGFLOW_SPAWN_H
#include <stdint.h>
#include <sys/types.h>

/// What a supervisor reports on its report pipe: records of three int32 {kind, value, extra}.
enum {
    /// value: the command's pid, which is also its process group id.
    PGFLOW_REPORT_STARTED = 1,
    /// value: the errno of the failed execve.
    PGFLOW_REPORT_SPAWN_FAILED = 2,
    /// value: the command's wait status; extra: why the supervisor killed the group (PGFLOW_FENCE_*).
    PGFLOW_REPORT_ENDED = 3,
    /// value: the command's pid (its process group id), written before the command may exec: a
    /// supervisor killed after this report leaves the agent a group to kill; killed before it, it leaves a
    /// child that exits without running the command.
    PGFLOW_REPORT_FORKED = 4,
};

/// Why a supervisor killed its command's process group.
enum {
    /// It did not: the command ended by itself (or the agent stopped it).
    PGFLOW_FENCE_NONE = 0,
    /// The agent is gone (its end of the liveness pipe closed).
    PGFLOW_FENCE_AGENT_GONE = 1,
    /// The liveness pipe stayed quiet for the fence timeout (agent frozen or cut off from the database).
    PGFLOW_FENCE_SILENT = 2,
    /// The deadline had passed when the command was to start: it never ran (reported as ENDED right
    /// after FORKED, with the waiting child's status).
    PGFLOW_FENCE_BEFORE_START = 3,
};

/// Starts a supervisor process that starts the executable at `path` (`argv`, `envp`) in a new process
/// group whose id is its pid, with stdin/stdout/stderr on the given descriptors, and watches it:
///
/// - the agent writes a byte to `liveness_fd`'s other end while its heartbeat to the database succeeds;
///   when that end closes (the agent died) or stays quiet for `fence_ms`, the supervisor kills the whole
///   group (SIGTERM, SIGKILL `grace_ms` later), so no process of a run outlives its agent's claim;
/// - `deadline_ms` (CLOCK_MONOTONIC milliseconds, `pgflow_monotonic_ms`; 0 for none) is when the agent's
///   claim stops being proven (its last successful heartbeat + the fresh window + the fence timeout): the
///   quiet time counts from `deadline_ms - fence_ms`, not from the supervisor's start, and a command whose
///   deadline has passed before it may exec never runs (PGFLOW_FENCE_BEFORE_START): an agent frozen
///   between its claim and the spawn cannot start a run the reaper has handed to another agent;
/// - when the command ends, what it left behind in its group is stopped the same way;
/// - it is named `pgflow-fence`, ignores SIGTERM/SIGINT/SIGHUP/SIGQUIT (it ends when the group is empty),
///   is a child subreaper (orphaned grandchildren become its children and are reaped) and lives in a
///   process group of its own (a terminal's signals to the agent's group do not reach it).
///
/// It writes PGFLOW_REPORT_FORKED, then PGFLOW_REPORT_STARTED or PGFLOW_REPORT_SPAWN_FAILED (or, past the
/// deadline, PGFLOW_REPORT_ENDED with PGFLOW_FENCE_BEFORE_START), and at the end PGFLOW_REPORT_ENDED, to `report_fd`, then exits 0 once the group is empty. Returns the supervisor's pid, or -1 with errno set.
/// Only async-signal-safe calls happen between fork and exec.
pid_t pgflow_spawn_supervised(const char *path, const char *const argv[], const char *const envp[], int stdin_fd,
                              int stdout_fd, int stderr_fd, int liveness_fd, int report_fd, int fence_ms, int grace_ms,
                              long long deadline_ms);

/// CLOCK_MONOTONIC in milliseconds (the clock of `deadline_ms`; it runs on while a process is stopped).
long long pgflow_monotonic_ms(void);

/// pipe2(fds, O_CLOEXEC).
int pgflow_pipe_cloexec(int fds[2]);

/// 1 when `pid` has exited (without reaping it), else 0.
int pgflow_child_exited(pid_t pid);

#endif
