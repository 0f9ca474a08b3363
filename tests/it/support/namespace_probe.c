/* Reports which ways of making a user namespace a RUN step's seccomp filter lets through:
 * unshare(2), clone(2) with CLONE_NEWUSER, clone3(2), or a plain clone (a fork), as named by
 * its argument; it prints "WAY allowed" or the errno's name. Built statically so that it
 * runs on the busybox test image. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *outcome(long result) {
    if (result >= 0) {
        return "allowed";
    }
    switch (errno) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    default: return strerror(errno);
    }
}

/* A child made by clone or clone3 exits at once; the parent reaps it. */
static long fork_like(long result) {
    if (result == 0) {
        _exit(0);
    }
    if (result > 0) {
        waitpid((pid_t)result, NULL, __WALL);
    }
    return result;
}

/* One way per run, so that one call's success (a process now in a user namespace) does not
 * change what the next one meets. */
int main(int argc, char **argv) {
    const char *way = argc > 1 ? argv[1] : "";
    if (strcmp(way, "unshare") == 0) {
        printf("unshare %s\n", outcome(unshare(CLONE_NEWUSER)));
    } else if (strcmp(way, "clone") == 0) {
        printf("clone %s\n",
               outcome(fork_like(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0))));
    } else if (strcmp(way, "clone3") == 0) {
        struct {
            unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack,
                stack_size, tls;
        } args = {.flags = CLONE_NEWUSER, .exit_signal = SIGCHLD};
        printf("clone3 %s\n", outcome(fork_like(syscall(SYS_clone3, &args, sizeof args))));
    } else if (strcmp(way, "fork") == 0) {
        printf("fork %s\n", outcome(fork_like(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0))));
    } else {
        fprintf(stderr, "usage: namespace_probe unshare|clone|clone3|fork\n");
        return 2;
    }
    return 0;
}
