/* A small static program for the container tests: a few distinctive syscalls, no capabilities. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(void) {
    struct utsname u;
    char cwd[256];
    if (uname(&u) != 0) { perror("uname"); return 3; }
    if (!getcwd(cwd, sizeof cwd)) { perror("getcwd"); return 4; }
    int fd = open("/tmp/app.out", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); return 5; }
    if (write(fd, u.nodename, strlen(u.nodename)) < 0) { perror("write"); return 6; }
    close(fd);
    printf("app ok on %s in %s\n", u.nodename, cwd);
    return 0;
}
