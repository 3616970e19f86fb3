/* ptrace hot-loop workload (tests/test_ptloop.py): N rounds of the opens and tracked-argument calls the C loop
 * handles, and of the opens it hands back to Python, in DIR (argv[1], emptied by the test before each run),
 * N = argv[2]:
 *   - ioctl with three requests (FIONREAD on a pipe succeeds, TCGETS on it fails with ENOTTY, FIOCLEX),
 *     mmap with three prot values, mprotect, prctl(PR_GET_DUMPABLE);
 *   - open/openat of existing files read-only, read-write and as a directory, of a missing file (ENOENT),
 *     of a pipe through /proc/self/fd (its link is "pipe:[ino]", not a path), O_CREAT of an existing file
 *     and of a new one, O_CREAT|O_EXCL of an existing one (EEXIST), O_TMPFILE;
 *   - once: an open of a deleted file through /proc/self/fd (its link ends in " (deleted)");
 *   - in a 64-bit program, the same ioctls and opens through int $0x80 (i386: open 5, ioctl 54) and the
 *     x32 bit (openat, ioctl 514: ENOSYS where the kernel lacks x32); built with -m32, natively i386;
 *   - with a third argument T: the rounds in T threads too; with a fourth, "plain": only the calls the C loop
 *     handles all by itself (no O_CREAT, O_TMPFILE or deleted file).
 * Prints the number of rounds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

static int rounds, plain;
static const char *dir;
#ifdef __x86_64__
static char *low;   /* paths below 4 GiB, for int $0x80 */
#endif

static void path(char *out, const char *name) { snprintf(out, 4096, "%s/%s", dir, name); }

static void opened(long fd)
{
    if (fd >= 0)
        close((int)fd);
}

static void *calls(void *arg)
{
    int p[2];
    char f[4096], g[4096], h[4096], pipe_path[64];
    path(f, "existing");
    path(g, "missing");
    if (pipe(p) != 0)
        return arg;
    snprintf(pipe_path, sizeof pipe_path, "/proc/self/fd/%d", p[0]);
    for (int i = 0; i < rounds; i++) {
        int n;
        ioctl(p[0], FIONREAD, &n);
        struct termios t;
        ioctl(p[0], TCGETS, &t);
        ioctl(p[1], FIOCLEX);
        static const int prots[] = {PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE};
        void *m = mmap(NULL, 4096, prots[i % 3], MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m != MAP_FAILED) {
            mprotect(m, 4096, PROT_READ);
            munmap(m, 4096);
        }
        prctl(PR_GET_DUMPABLE);
        opened(open(f, O_RDONLY | O_CLOEXEC));
        opened(openat(AT_FDCWD, f, O_RDWR));
        opened(open(dir, O_RDONLY | O_DIRECTORY));
        opened(open(g, O_RDONLY));
        opened(open(pipe_path, O_RDONLY | O_NONBLOCK));
        if (!plain) {
            opened(open(f, O_WRONLY | O_CREAT, 0600));
            snprintf(h, sizeof h, "%s/new-%ld-%d", dir, (long)(intptr_t)arg, i % 4);
            opened(open(h, O_WRONLY | O_CREAT | O_TRUNC, 0600));
            opened(open(f, O_WRONLY | O_CREAT | O_EXCL, 0600));
            opened(open(dir, O_TMPFILE | O_RDWR, 0600));
        }
#ifdef __x86_64__
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(5L), "b"(low), "c"((long)O_RDONLY) : "memory");
        opened(r);
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(5L), "b"(low), "c"((long)O_RDWR) : "memory");
        opened(r);
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(5L), "b"(low + 4096), "c"((long)O_RDONLY) : "memory");
        opened(r);
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(54L), "b"((long)p[0]), "c"((long)FIONREAD), "d"(low + 8192)
                         : "memory");
        opened(syscall(0x40000000 | SYS_openat, AT_FDCWD, f, O_RDONLY));
        syscall(0x40000000 | 514, p[0], FIONREAD, &n);
#endif
    }
    close(p[0]);
    close(p[1]);
    return arg;
}

int main(int argc, char **argv)
{
    dir = argc > 1 ? argv[1] : "/tmp";
    rounds = argc > 2 ? atoi(argv[2]) : 100;
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    plain = argc > 4 && strcmp(argv[4], "plain") == 0;
    char f[4096];
    path(f, "existing");
    int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, "x\n", 2) != 2)
        return 1;
    close(fd);
    /* these flags again, the file there: both access kinds of (flags, created) are known before the rounds
     * create their new files, so that the C loop records those creations itself */
    opened(open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600));
#ifdef __x86_64__
    low = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (low == MAP_FAILED)
        return 1;
    snprintf(low, 4096, "%s", f);
    snprintf(low + 4096, 4096, "%s/missing-i386", dir);
#endif
    /* a deleted file, opened again through /proc/self/fd: its link ends in " (deleted)" */
    char d[4096], link[64];
    path(d, "deleted");
    if (!plain && (fd = open(d, O_RDWR | O_CREAT, 0600)) >= 0) {
        unlink(d);
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        opened(open(link, O_RDONLY));
        close(fd);
    }
    pthread_t t[8];
    for (int i = 0; i < threads && i < 8; i++)
        pthread_create(&t[i], NULL, calls, (void *)(intptr_t)(i + 1));
    calls((void *)0);
    for (int i = 0; i < threads && i < 8; i++)
        pthread_join(t[i], NULL);
    printf("%d\n", rounds);
    return 0;
}
