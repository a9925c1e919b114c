#define _GNU_SOURCE
#include "pgflow_spawn.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/close_range.h>

pid_t pgflow_spawn(const char *path, const char *const argv[], const char *const envp[], int stdin_fd, int stdout_fd,
                   int stderr_fd) {
    /* vfork: the child borrows the parent's memory until execve, so starting a command costs no page
     * table copy of a large parent. The child only makes system calls with values prepared before. */
    volatile int child_errno = 0;
    pid_t parent = getpid();
    pid_t pid = vfork();
    if (pid < 0) return -1;
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* the parent died before prctl took effect */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(stdin_fd, 0) < 0 || dup2(stdout_fd, 1) < 0 || dup2(stderr_fd, 2) < 0) {
            child_errno = errno;
            _exit(127);
        }
        /* Every other inherited descriptor closes on exec. */
        syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
        execve(path, (char *const *)argv, (char *const *)envp);
        child_errno = errno;
        _exit(127);
    }
    if (child_errno != 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        errno = child_errno;
        return -1;
    }
    return pid;
}

int pgflow_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int pgflow_child_exited(pid_t pid) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}
