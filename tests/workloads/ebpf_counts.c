/* eBPF counting workload: fchdir in runs of different results from two threads (the kernel
 * keeps a CPU's run of one errno in the slot's entry and adds it to the errno map when another
 * errno comes: the totals must still be exact), and sockets whose fds are closed and reused
 * (the process's socket-fd bitmap), one at an fd above 63; ioctl with two requests in runs of different
 * lengths from two threads (a CPU's run of one argument tuple stays in the slot's entry too). Prints the
 * expected totals. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ROUNDS 300

static int dirfd_, filefd;

static void *runs(void *arg) {
    long seed = (long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        int a = 1 + (i * 7 + seed) % 5, b = 1 + (i * 3 + seed) % 4, c = 1 + (i + seed) % 3;
        for (int k = 0; k < a; k++) syscall(SYS_fchdir, -1);       /* EBADF */
        for (int k = 0; k < b; k++) syscall(SYS_fchdir, filefd);   /* ENOTDIR */
        for (int k = 0; k < c; k++) syscall(SYS_fchdir, dirfd_);   /* ok */
    }
    return NULL;
}

static int nullfd;

static void *ioctl_runs(void *arg) {
    long seed = (long)arg;
    for (int i = 0; i < ROUNDS; i++) {
        int a = 1 + (i * 5 + seed) % 4, b = 1 + (i * 3 + seed) % 3;
        for (int k = 0; k < a; k++) syscall(SYS_ioctl, nullfd, TCGETS, 0);     /* ENOTTY */
        for (int k = 0; k < b; k++) syscall(SYS_ioctl, nullfd, FIONREAD, 0);
    }
    return NULL;
}

static long ioctl_total(long seed, int which) {
    long n = 0;
    for (int i = 0; i < ROUNDS; i++)
        n += which == 0 ? 1 + (i * 5 + seed) % 4 : 1 + (i * 3 + seed) % 3;
    return n;
}

static long total(long seed, int which) {
    long n = 0;
    for (int i = 0; i < ROUNDS; i++)
        n += which == 0 ? 1 + (i * 7 + seed) % 5 : which == 1 ? 1 + (i * 3 + seed) % 4 : 1 + (i + seed) % 3;
    return n;
}

int main(void) {
    dirfd_ = open("/", O_RDONLY | O_DIRECTORY);
    filefd = open("/proc/self/exe", O_RDONLY);
    pthread_t t;
    pthread_create(&t, NULL, runs, (void *)1L);
    runs((void *)2L);
    pthread_join(t, NULL);
    printf("EBADF %ld ENOTDIR %ld ok %ld\n", total(1, 0) + total(2, 0), total(1, 1) + total(2, 1),
           total(1, 2) + total(2, 2));
    nullfd = open("/dev/null", O_RDONLY);
    pthread_create(&t, NULL, ioctl_runs, (void *)1L);
    ioctl_runs((void *)2L);
    pthread_join(t, NULL);
    close(nullfd);
    printf("ioctl %d %ld %d %ld\n", TCGETS, ioctl_total(1, 0) + ioctl_total(2, 0), FIONREAD,
           ioctl_total(1, 1) + ioctl_total(2, 1));

    /* a socket's fd closed and taken by a socketpair end: a connect on that end is not the old socket's
       (once below fd 63, once above, where the process's bitmap has one bit for all) */
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int round = 0; round < 2; round++) {
        if (round == 1)
            for (int i = 0; i < 70; i++) dup(0);
        int s = socket(AF_INET, round ? SOCK_STREAM : SOCK_DGRAM, 0);
        if (connect(s, (struct sockaddr *)&to, sizeof(to)) == 0 || round == 1)
            printf("socket at fd %d\n", s);
        close(s);
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        to.sin_port = htons(round ? 11 : 10);
        connect(sv[0] == s ? sv[0] : sv[1], (struct sockaddr *)&to, sizeof(to));
        to.sin_port = htons(round ? 13 : 12);
    }
    return 0;
}
