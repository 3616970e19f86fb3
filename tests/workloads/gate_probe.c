/* The fast gate's tests (tests/test_fastgate.py): what a check must see, next to calls it may skip.
   Always: 2000 getppid() calls (a storm the baseline explains), an anonymous read/write mmap,
   reads /etc/passwd. Then, by argv[1]:
     base     nothing more
     newsys   getcpu(), a syscall the baseline does not have
     newarg   mmap(PROT_READ|PROT_WRITE|PROT_EXEC): mmap is in the baseline, this prot value is not
     newpath  opens /etc/hostname, a path the baseline does not have
     newexec  runs /bin/true (fork + execve), an executable the baseline does not have
     newabi   an i386 getpid() through int 0x80 (x86_64): a call of another ABI, which no syscall event shows
   Exits 0, or 4 when a call failed. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "base";
    for (int i = 0; i < 2000; i++)
        syscall(SYS_getppid);
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 4;
    int fd = open("/etc/passwd", O_RDONLY);
    if (fd < 0) return 4;
    close(fd);
    if (strcmp(mode, "newsys") == 0) {
        unsigned cpu = 0, node = 0;
        if (syscall(SYS_getcpu, &cpu, &node, NULL) < 0) return 4;
    } else if (strcmp(mode, "newarg") == 0) {
        m = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 4;
    } else if (strcmp(mode, "newpath") == 0) {
        fd = open("/etc/hostname", O_RDONLY);
        if (fd < 0) return 4;
        close(fd);
    } else if (strcmp(mode, "newexec") == 0) {
        pid_t p = fork();
        if (p < 0) return 4;
        if (p == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int st;
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 4;
    } else if (strcmp(mode, "newabi") == 0) {
#if defined(__x86_64__)
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");   /* i386 getpid */
        if (r <= 0) return 4;
#endif
    }
    printf("%s ok\n", mode);
    return 0;
}
