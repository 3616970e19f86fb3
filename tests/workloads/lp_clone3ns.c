/* ptrace tracer test workload: clone3 with CLONE_NEWUSER, falling back to clone on ENOSYS as glibc does. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_NEWUSER;
    ca.exit_signal = SIGCHLD;
    long c = syscall(SYS_clone3, &ca, sizeof ca);
    if (c < 0 && errno == ENOSYS)
        c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (c < 0) { printf("clone: %s\n", strerror(errno)); return 3; }
    if (c == 0) _exit(0);
    int status;
    waitpid((pid_t)c, &status, 0);
    printf("userns child ok\n");
    return 0;
}
