#define _GNU_SOURCE
#include "pgflow_spawn.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/close_range.h>

/* Fixed descriptor numbers inside the supervisor. */
enum { SUP_IN = 3, SUP_OUT = 4, SUP_ERR = 5, SUP_LIVE = 6, SUP_REPORT = 7 };

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void report(int kind, int value, int extra) {
    int32_t record[3] = {kind, value, extra};
    ssize_t n;
    do { n = write(SUP_REPORT, record, sizeof record); } while (n < 0 && errno == EINTR);
}

static void default_signals(void) {
    for (int s = 1; s < 32; s++) {
        if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* True while any process is in group `pgid`. */
static int group_alive(pid_t pgid) { return kill(-pgid, 0) == 0 || errno == EPERM; }

/* The parent of `pid` from /proc/PID/stat (0 when it is gone). */
static pid_t parent_of(pid_t pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (close_paren == NULL) return 0;
    char state;
    int ppid;
    if (sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2) return 0;
    return (pid_t)ppid;
}

/* Sends `sig` to every process descending from this supervisor. The command's process group misses a
 * descendant that left it (setsid, setpgid: a daemonising script); as a child subreaper the supervisor
 * inherits every orphan, so all of them have their parent chains leading here. Found through /proc. */
static void signal_descendants(int sig) {
    pid_t self = getpid();
    size_t count = 0, capacity = 1024;
    pid_t *pids = malloc(capacity * sizeof *pids), *parents = malloc(capacity * sizeof *parents);
    char *mark = NULL;
    DIR *dir = opendir("/proc");
    if (pids == NULL || parents == NULL || dir == NULL) goto done;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == self) continue;
        pid_t parent = parent_of((pid_t)pid);
        if (parent == 0) continue;
        if (count == capacity) {
            capacity *= 2;
            pid_t *p = realloc(pids, capacity * sizeof *pids), *q = p ? realloc(parents, capacity * sizeof *parents) : NULL;
            if (p) pids = p;
            if (q == NULL) goto done;
            parents = q;
        }
        pids[count] = (pid_t)pid;
        parents[count] = parent;
        count++;
    }
    mark = calloc(count ? count : 1, 1);
    if (mark == NULL) goto done;
    /* Mark the descendants: a pass marks the children of what is marked (or of this process) until none is new. */
    for (int changed = 1; changed;) {
        changed = 0;
        for (size_t i = 0; i < count; i++) {
            if (mark[i]) continue;
            int descends = parents[i] == self;
            for (size_t j = 0; !descends && j < count; j++) descends = mark[j] && pids[j] == parents[i];
            if (descends) mark[i] = changed = 1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (mark[i]) kill(pids[i], sig);
    }
done:
    if (dir) closedir(dir);
    free(pids);
    free(parents);
    free(mark);
}

/* Runs in the forked command: its own group, then waits for the supervisor's go (sent once the agent has the
 * pid: see PGFLOW_REPORT_FORKED), stdio, default signals, exec. */
static void exec_command(const char *path, const char *const argv[], const char *const envp[], int error_fd, int go_fd) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the direct child at least dies with a killed supervisor */
    char go = 0;
    ssize_t got;
    do { got = read(go_fd, &go, 1); } while (got < 0 && errno == EINTR);
    if (got != 1) _exit(127); /* the supervisor died before its report: nobody would know this pid */
    default_signals();
    if (dup2(SUP_IN, 0) < 0 || dup2(SUP_OUT, 1) < 0 || dup2(SUP_ERR, 2) < 0) goto failed;
    /* The supervisor's descriptors stay behind; error_fd closes on exec. */
    syscall(SYS_close_range, 3U, (unsigned)SUP_REPORT, 0U);
    execve(path, (char *const *)argv, (char *const *)envp);
failed:;
    int e = errno;
    ssize_t n;
    do { n = write(error_fd, &e, sizeof e); } while (n < 0 && errno == EINTR);
    _exit(127);
}

static void supervise(const char *path, const char *const argv[], const char *const envp[], int fence_ms, int grace_ms,
                      long long deadline_ms) {
    setpgid(0, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    default_signals();
    /* Not a target of `pkill pgflow-agent` (it matches the name), and deaf to the signals an operator or a
     * terminal sends a group: it ends when its command's group is empty. A dead agent's report pipe must not
     * kill it either. (SIGKILL still does: then the command dies of its parent-death signal, and the agent,
     * finding the supervisor gone without its last report, kills what is left in the command's group; only
     * a descendant that also left the group survives that, the one gap left.) Descendants that leave the command's process group are
     * still found, through /proc, since as a subreaper this process inherits every orphan. */
    prctl(PR_SET_NAME, "pgflow-fence");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int errpipe[2], gopipe[2];
    if (pipe2(errpipe, O_CLOEXEC) < 0 || pipe2(gopipe, O_CLOEXEC) < 0) {
        report(PGFLOW_REPORT_SPAWN_FAILED, errno, 0);
        _exit(0);
    }
    pid_t cmd = fork();
    if (cmd < 0) {
        report(PGFLOW_REPORT_SPAWN_FAILED, errno, 0);
        _exit(0);
    }
    if (cmd == 0) {
        close(errpipe[0]);
        close(gopipe[1]);
        exec_command(path, argv, envp, errpipe[1], gopipe[0]);
    }
    setpgid(cmd, cmd); /* also here: no race with a kill(-cmd) right after the report */
    /* The agent learns the pid before the command can run (it waits for the go): killed at any point after
     * this, the supervisor leaves the agent a group to kill. (Once exec'd, the command may run before this
     * process is scheduled again to report STARTED.) */
    report(PGFLOW_REPORT_FORKED, cmd, 0);
    close(gopipe[0]);
    /* The agent's claim is proven only until the deadline (its last successful heartbeat + the fresh window
     * + the fence timeout): past it (the agent was frozen or cut off between its claim and this spawn), the
     * reaper may have handed the run to another agent, so the command never runs: no go, the child exits. */
    if (deadline_ms > 0 && now_ms() >= deadline_ms) {
        close(gopipe[1]);
        int status;
        while (waitpid(cmd, &status, 0) < 0 && errno == EINTR) {}
        report(PGFLOW_REPORT_ENDED, status, PGFLOW_FENCE_BEFORE_START);
        _exit(0);
    }
    ssize_t sent;
    do { sent = write(gopipe[1], "g", 1); } while (sent < 0 && errno == EINTR);
    close(gopipe[1]);
    close(errpipe[1]);
    close(SUP_IN);
    close(SUP_OUT);
    close(SUP_ERR);
    int exec_errno = 0;
    ssize_t n;
    do { n = read(errpipe[0], &exec_errno, sizeof exec_errno); } while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == (ssize_t)sizeof exec_errno) {
        int status;
        while (waitpid(cmd, &status, 0) < 0 && errno == EINTR) {}
        report(PGFLOW_REPORT_SPAWN_FAILED, exec_errno, 0);
        _exit(0);
    }
    report(PGFLOW_REPORT_STARTED, cmd, 0);

    int live_open = 1, cmd_done = 0, cmd_status = 0, fence = PGFLOW_FENCE_NONE;
    /* Quiet since the deadline's last proof at the latest, not since this process started (an agent frozen
     * before the spawn does not get a fresh fence timeout); a beat extends it. */
    long long last_beat = now_ms(), term_at = 0;
    if (deadline_ms > 0 && deadline_ms - fence_ms < last_beat) last_beat = deadline_ms - fence_ms;
    for (;;) {
        int status, no_children = 0;
        pid_t p;
        while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
            if (p == cmd) {
                cmd_done = 1;
                cmd_status = status;
            }
        }
        if (p < 0 && errno == ECHILD) no_children = 1;
        /* Done when the command ended and nothing it started is left: not in its group, and (orphans
         * come here) no child of this supervisor at all. */
        if (cmd_done && !group_alive(cmd) && no_children) break;
        long long now = now_ms();
        if (fence == PGFLOW_FENCE_NONE && !cmd_done && live_open && now - last_beat >= fence_ms) fence = PGFLOW_FENCE_SILENT;
        if (term_at == 0 && (fence != PGFLOW_FENCE_NONE || cmd_done)) {
            kill(-cmd, SIGTERM);
            kill(-cmd, SIGCONT);
            signal_descendants(SIGTERM);
            signal_descendants(SIGCONT);
            term_at = now;
        }
        if (term_at != 0 && now - term_at >= grace_ms) {
            /* again on every pass: a descendant may have forked meanwhile */
            kill(-cmd, SIGKILL);
            signal_descendants(SIGKILL);
        }
        struct pollfd pfd = {.fd = live_open ? SUP_LIVE : -1, .events = POLLIN, .revents = 0};
        int ready = poll(&pfd, 1, 50);
        if (ready > 0 && live_open) {
            char buf[256];
            ssize_t got = read(SUP_LIVE, buf, sizeof buf);
            if (got > 0) {
                last_beat = now_ms();
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                live_open = 0;
                close(SUP_LIVE);
                if (!cmd_done && fence == PGFLOW_FENCE_NONE) fence = PGFLOW_FENCE_AGENT_GONE;
            }
        }
    }
    report(PGFLOW_REPORT_ENDED, cmd_status, fence);
    _exit(0);
}

/* Moves `fd` to `target` in the forked supervisor (the sources sit above every target first). */
static int place(int fd, int target) { return fd == target ? fcntl(fd, F_SETFD, 0) : dup2(fd, target); }

pid_t pgflow_spawn_supervised(const char *path, const char *const argv[], const char *const envp[], int stdin_fd,
                              int stdout_fd, int stderr_fd, int liveness_fd, int report_fd, int fence_ms, int grace_ms,
                              long long deadline_ms) {
    pid_t pid = fork();
    if (pid != 0) return pid; /* -1 with errno, or the supervisor */
    /* Copies above the fixed numbers first, so that placing one cannot overwrite another. */
    int src[5] = {stdin_fd, stdout_fd, stderr_fd, liveness_fd, report_fd};
    for (int i = 0; i < 5; i++) {
        src[i] = fcntl(src[i], F_DUPFD, 64);
        if (src[i] < 0) _exit(127);
    }
    for (int i = 0; i < 5; i++) {
        if (place(src[i], SUP_IN + i) < 0) _exit(127);
    }
    /* Nothing else of the agent's stays open here (other runs' pipes above all). */
    syscall(SYS_close_range, (unsigned)SUP_REPORT + 1, ~0U, 0U);
    supervise(path, argv, envp, fence_ms, grace_ms, deadline_ms);
    _exit(0);
}

int pgflow_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

long long pgflow_monotonic_ms(void) { return now_ms(); }

int pgflow_child_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}
