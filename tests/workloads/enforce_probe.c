/* enforce tests: uname, read a file, print both; any failure -> "<call>: <strerror>", exit 3 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(int argc, char **argv) {
    struct utsname u;
    if (uname(&u) < 0) { printf("uname: %s\n", strerror(errno)); return 3; }
    printf("sysname %s\n", u.sysname);
    if (argc > 1) {
        char buf[256];
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0) { printf("open: %s\n", strerror(errno)); return 3; }
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n < 0) { printf("read: %s\n", strerror(errno)); return 3; }
        buf[n] = 0;
        printf("content %s", buf);
        close(fd);
    }
    return 0;
}
