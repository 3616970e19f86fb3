/* A deterministic workload for comparing backends: the same syscalls every run,
 * including a fork, a pipe, a file write/read and a few argument-tracked calls. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "/tmp/lp-ebpf-det.txt";
    char buf[64];
    int p[2];
    if (pipe(p) < 0) return 2;
    pid_t c = fork();
    if (c == 0) {
        close(p[0]);
        write(p[1], "hello", 5);
        _exit(0);
    }
    close(p[1]);
    ssize_t n = read(p[0], buf, sizeof(buf));
    close(p[0]);
    waitpid(c, NULL, 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    write(fd, buf, n > 0 ? n : 0);
    close(fd);
    fd = open(path, O_RDONLY);
    read(fd, buf, sizeof(buf));
    close(fd);
    struct stat st;
    stat(path, &st);
    unlink(path);
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(m, 4096, PROT_READ);
    munmap(m, 4096);
    prctl(PR_SET_NAME, "lp-det", 0, 0, 0);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    close(s);
    kill(getpid(), 0);
    printf("ok %d\n", getpid() > 0);
    return 0;
}
