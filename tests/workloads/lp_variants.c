/* The same operations in two variants, as two inputs of one program might pick them.
 * "a": write+fsync, poll, fork;  "b": pwrite64+fdatasync, ppoll, vfork.
 * Prints one line per step; exits 0 when every step worked. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int b = argc > 1 && argv[1][0] == 'b';
    const char *path = argc > 2 ? argv[2] : "variants.out";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); return 2; }
    int ok = b ? pwrite(fd, "x", 1, 0) == 1 && fdatasync(fd) == 0 : write(fd, "x", 1) == 1 && fsync(fd) == 0;
    printf("sync: %s\n", ok ? "ok" : "denied");
    close(fd);
    struct pollfd p = {.fd = 1, .events = POLLOUT};
    struct timespec ts = {0, 0};
    int r = b ? ppoll(&p, 1, &ts, NULL) : poll(&p, 1, 0);
    printf("poll: %s\n", r >= 0 ? "ok" : "denied");
    fflush(stdout);
    pid_t pid = b ? vfork() : fork();
    if (pid == 0) _exit(7);
    int st = 0;
    if (pid > 0) waitpid(pid, &st, 0);
    printf("fork: %s\n", pid > 0 && WEXITSTATUS(st) == 7 ? "ok" : "denied");
    return ok && r >= 0 && pid > 0 ? 0 : 1;
}
