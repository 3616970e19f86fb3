/* ptrace tracer test workload, built with -m32: its syscalls are i386 ones. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct utsname u;
    if (uname(&u) < 0) { printf("uname: %s\n", strerror(errno)); return 3; }
    int fd = open(argc > 1 ? argv[1] : "/etc/hostname", O_RDONLY);
    if (fd < 0) { printf("open: %s\n", strerror(errno)); return 4; }
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    printf("i386 %s read %d\n", sizeof(void *) == 4 ? "32-bit" : "64-bit", n > 0 ? 1 : 0);
    return 0;
}
