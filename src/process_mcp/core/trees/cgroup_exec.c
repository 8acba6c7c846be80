/* process-mcp cgroup launcher: starts a program already inside a cgroup v2 directory, so
 * that nothing it forks can ever be outside it. Compiled at first use by cgroup_join.py.
 *
 *   cgexec join  CGDIR PROG ARGV0 [ARG...]          move self into CGDIR, then exec
 *   cgexec clone CGDIR REPORTFD PROG ARGV0 [ARG...] clone3(CLONE_INTO_CGROUP|CLONE_PARENT),
 *       child: setsid + exec; writes "PID ERRNO\n" to REPORTFD once the child has exec'd
 *       (ERRNO 0) or failed, then exits 0. The child is our parent's child (CLONE_PARENT).
 *       Kernels without CLONE_INTO_CGROUP (E2BIG, ENOSYS, EPERM under seccomp) fall back
 *       to fork + join inside the child.
 *
 * Exit 125: the cgroup could not be joined (message on stderr). join mode, exec failure:
 * 127 for ENOENT, else 126, message on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int join(const char *dir) {
    int dfd = open(dir, O_DIRECTORY | O_PATH | O_CLOEXEC);
    if (dfd < 0) return errno;
    int fd = openat(dfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0 && write(fd, "0", 1) != 1) err = errno;
    if (fd >= 0) close(fd);
    close(dfd);
    return err;
}

/* Like Popen: PROG with a slash is a path, without one it is looked up in the PATH of
 * the environment we were given (the child's). */
static void run(const char *prog, char **argv) {
    if (strchr(prog, '/')) execv(prog, argv);
    else execvp(prog, argv);
}

static void fail_join(const char *dir, int err) {
    dprintf(2, "process-mcp: cannot join cgroup %s: %s\n", dir, strerror(err));
    _exit(125);
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "join") == 0) {
        int err = join(argv[2]);
        if (err) fail_join(argv[2], err);
        run(argv[3], argv + 4);
        err = errno;
        dprintf(2, "process-mcp: cannot execute %s: %s\n", argv[3], strerror(err));
        _exit(err == ENOENT ? 127 : 126);
    }
    if (argc < 6 || strcmp(argv[1], "clone") != 0) {
        dprintf(2, "usage: cgexec join CGDIR PROG ARGV0 [ARG...] | "
                   "clone CGDIR REPORTFD PROG ARGV0 [ARG...]\n");
        return 2;
    }
    const char *dir = argv[2];
    int report = atoi(argv[3]);
    int status[2];
    if (pipe2(status, O_CLOEXEC) < 0) return 125;
    int dfd = open(dir, O_DIRECTORY | O_PATH | O_CLOEXEC);
    if (dfd < 0) fail_join(dir, errno);
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_INTO_CGROUP | CLONE_PARENT;
    /* exit_signal stays 0: with CLONE_PARENT the kernel takes ours (SIGCHLD), and
       refuses any other value (EINVAL). */
    args.cgroup = (uint64_t)dfd;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    int joined = 0;
    if (pid < 0 && (errno == E2BIG || errno == ENOSYS || errno == EPERM)) {
        args.flags = CLONE_PARENT; /* the child joins itself before exec instead */
        pid = syscall(SYS_clone3, &args, sizeof args);
        if (pid < 0) pid = fork(); /* no clone3: the child is reparented to our parent
                                      (a subreaper) when we exit */
        joined = 1;
    }
    if (pid < 0) fail_join(dir, errno);
    if (pid == 0) {
        int err = 0;
        close(status[0]);
        close(report); /* the job must not hold the report open */
        if (joined) err = join(dir);
        if (!err) {
            setsid();
            run(argv[4], argv + 5);
            err = errno;
        } else {
            err = -err; /* negative: the join failed, not the exec */
        }
        (void)!write(status[1], &err, sizeof err);
        _exit(127);
    }
    close(status[1]);
    int err = 0;
    ssize_t got;
    do got = read(status[0], &err, sizeof err);
    while (got < 0 && errno == EINTR);
    if (got != sizeof err) err = 0; /* EOF: the exec succeeded */
    dprintf(report, "%ld %d\n", pid, err);
    return 0;
}
