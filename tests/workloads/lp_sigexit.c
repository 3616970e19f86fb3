/* The calls a syscall's return cannot show, for comparing backends (the full eBPF trace records a call at
 * its return): sigreturns (no number at their exit), from handlers with and without SA_SIGINFO and one
 * nested in another; exit (a thread's end) and exit_group, which never return; an exec by execveat
 * (fexecve) and one by execve, whose returns show the new image's execve number; and syscall(-1), an exit
 * without a number that is not a sigreturn. Built for x86_64 and, with -m32, for i386 (sigreturn and
 * rt_sigreturn are then two calls). Deterministic: the same calls every run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int got;

static void plain(int sig) {
    (void)sig;
    got++;
}

static void with_info(int sig, siginfo_t *si, void *uc) {
    (void)si;
    (void)uc;
    got++;
    if (sig == SIGUSR2)
        raise(SIGUSR1);   /* a frame on top of this one: returns first */
}

static void *thread_main(void *arg) {
    (void)arg;
    syscall(SYS_exit, 0);   /* the thread's own exit(2), not pthread_exit's unwinding */
    return NULL;
}

static void run(char *const argv[], int by_fd) {
    pid_t c = fork();
    if (c == 0) {
        char *envp[] = {NULL};
        if (by_fd) {
            int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
            fexecve(fd, argv, envp);
        } else {
            execve(argv[0], argv, envp);
        }
        _exit(127);
    }
    waitpid(c, NULL, 0);
}

int main(void) {
    struct sigaction a;
    memset(&a, 0, sizeof(a));
    a.sa_handler = plain;
    sigaction(SIGUSR1, &a, NULL);
    a.sa_sigaction = with_info;
    a.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &a, NULL);
    sigaction(SIGALRM, &a, NULL);
    for (int i = 0; i < 3; i++)
        raise(SIGUSR1);
    raise(SIGALRM);
    raise(SIGUSR2);                   /* and SIGUSR1 nested in its handler */
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
    long r = syscall(-1L);
    char *true_argv[] = {"/bin/true", NULL};
    run(true_argv, 1);
    run(true_argv, 0);
    printf("%d %ld %d\n", got, r, errno);
    return 0;
}
