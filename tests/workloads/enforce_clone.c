/* enforce tests: "fork" forks a child that exits 7; "userns" also clones with CLONE_NEWUSER.
   Prints what worked; a failed call prints "<call>: <strerror>" and exits 4. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int st;
    pid_t p = fork();
    if (p < 0) { printf("fork: %s\n", strerror(errno)); return 4; }
    if (p == 0) _exit(7);
    waitpid(p, &st, 0);
    printf("fork ok %d\n", WEXITSTATUS(st));
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "userns") == 0) {
        long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (c < 0) { printf("clone(CLONE_NEWUSER): %s\n", strerror(errno)); return 4; }
        if (c == 0) _exit(0);
        waitpid((pid_t)c, &st, 0);
        printf("userns ok\n");
    }
    return 0;
}
