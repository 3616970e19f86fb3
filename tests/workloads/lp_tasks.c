/* ptrace tracer test workload: threads, fork, vfork+exec, clone3, an orphan that
 * outlives its parent, an i386 syscall made by a 64-bit program (int $0x80), an
 * unknown syscall number, tracked arguments. Each probe prints "NAME: error" if its
 * syscall fails, so that an enforced profile without it shows EPERM right there. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int check(const char *what, long r) {
    if (r < 0) { printf("%s: %s\n", what, strerror(errno)); fflush(stdout); return 1; }
    return 0;
}

static void *thread_main(void *arg) {
    unsigned cpu, node;
    check("getcpu", syscall(SYS_getcpu, &cpu, &node, NULL));
    /* outlive the main thread's pthread_join call, so the join always waits on a futex:
       otherwise futex is used or not by timing, and a one-run profile may lack it */
    usleep(20000);
    return arg;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    pthread_t t;
    int status;

    /* a thread */
    if (pthread_create(&t, NULL, thread_main, NULL) != 0) { printf("pthread_create failed\n"); return 5; }
    pthread_join(t, NULL);

    /* fork: the child uses umask, the parent waits */
    pid_t p = fork();
    if (p < 0) return check("fork", -1) + 5;
    if (p == 0) { umask(022); check("getpgid", syscall(SYS_getpgid, 0)); _exit(0); }
    waitpid(p, &status, 0);

    /* vfork + exec */
    p = vfork();
    if (p == 0) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
    waitpid(p, &status, 0);

    /* clone3 (raw): the child calls sched_yield */
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.exit_signal = SIGCHLD;
    long c = syscall(SYS_clone3, &ca, sizeof ca);
    if (c < 0 && errno == ENOSYS) c = fork();   /* as glibc does when clone3 is answered with ENOSYS */
    if (c == 0) { check("sched_yield", syscall(SYS_sched_yield)); _exit(0); }
    if (c > 0) waitpid((pid_t)c, &status, 0);
    else check("clone3", c);

    /* an orphan: the middle child exits at once, the grandchild writes a file later */
    p = fork();
    if (p == 0) {
        if (fork() == 0) {
            usleep(200000);
            snprintf(path, sizeof path, "%s/orphan.txt", dir);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (!check("open orphan", fd)) { check("getpriority", syscall(SYS_getpriority, 0, 0)); close(fd); }
            _exit(0);
        }
        _exit(0);
    }
    waitpid(p, &status, 0);

    /* tracked arguments */
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (!check("socket", s)) close(s);
    check("prctl", prctl(PR_SET_NAME, "lp-tasks", 0, 0, 0));
    check("kill", kill(getpid(), 0));

    /* an i386 syscall from a 64-bit program: getpid is 20 on i386 */
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    check("int80 getpid", r < 0 ? (errno = (int)-r, -1) : 0);

    /* a syscall number no table knows */
    if (argc > 2 && strcmp(argv[2], "unknown") == 0) {
        syscall(1000);
        syscall(0x40000000 | 39);   /* an x32 getpid (ENOSYS where the kernel has no x32 ABI) */
    }

    printf("tasks ok\n");
    return 0;
}
