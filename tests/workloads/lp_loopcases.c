/* ptrace hot-loop workload (tests/test_ptloop.py): N rounds of the calls the C loop handles, in every ABI
 * a 64-bit program can use, and in threads: a native call that succeeds (getppid), one that always fails
 * (close(-1): EBADF, sampled at every call until one succeeds), one that fails sometimes (dup of an fd
 * that is open every other round), the same through int $0x80 (i386: getppid is 64, close 6) and with
 * the x32 bit (ENOSYS where the kernel lacks x32). Built with -m32, the i386 program makes them natively.
 * Each thread makes the same calls. Then 10 sigsuspend()s, each ended by a timer's SIGALRM: the exit stop
 * shows the kernel-internal -ERESTARTNOHAND (the caller sees EINTR). SIGALRM is blocked outside
 * sigsuspend, which unblocks it and waits in one step: a pause() after setitimer() missed a 1 ms timer
 * that fired before it was entered (under load, with the tracer's stops in between) and waited forever.
 * Prints the number of rounds. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int rounds;

static void *calls(void *arg)
{
    for (int i = 0; i < rounds; i++) {
        syscall(SYS_getppid);
        syscall(SYS_close, -1);
        int fd = i % 2 ? dup(0) : -1;
        if (fd >= 0)
            close(fd);
        else
            syscall(SYS_dup, -1);
#ifdef __x86_64__
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(64L) : "memory");
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(6L), "b"(-1L) : "memory");
        syscall(0x40000000 | SYS_getppid);
#endif
    }
    return arg;
}

static void on_alarm(int sig) { (void)sig; }

int main(int argc, char **argv)
{
    rounds = argc > 1 ? atoi(argv[1]) : 1000;
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    pthread_t t[8];
    for (int i = 0; i < threads && i < 8; i++)
        pthread_create(&t[i], NULL, calls, NULL);
    calls(NULL);
    for (int i = 0; i < threads && i < 8; i++)
        pthread_join(t[i], NULL);
    signal(SIGALRM, on_alarm);
    sigset_t alarm, waiting;
    sigemptyset(&alarm);
    sigaddset(&alarm, SIGALRM);
    sigprocmask(SIG_BLOCK, &alarm, &waiting);   /* waiting: the mask before, without SIGALRM */
    sigdelset(&waiting, SIGALRM);
    struct itimerval ms = {{0, 0}, {0, 1000}};
    for (int i = 0; i < 10; i++) {
        setitimer(ITIMER_REAL, &ms, NULL);
        sigsuspend(&waiting);
    }
    printf("%d\n", rounds);
    return 0;
}
