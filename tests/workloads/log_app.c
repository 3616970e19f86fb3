/* A workload for the seccomp-log tests: writes a line about where it ran into DIR/out.txt.
 * uname and getcwd are each called exactly once per run, so a profile without them
 * produces exactly two seccomp log records per run (the kernel log is rate limited). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s DIR\n", argv[0]); return 2; }
    struct utsname u;
    char cwd[4096], path[4096], line[8192];
    if (uname(&u) != 0) { perror("uname"); return 3; }
    if (!getcwd(cwd, sizeof cwd)) { perror("getcwd"); return 4; }
    snprintf(path, sizeof path, "%s/out.txt", argv[1]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror("open"); return 5; }
    int n = snprintf(line, sizeof line, "%s %s\n", u.sysname, cwd);
    if (write(fd, line, n) != n) { perror("write"); return 6; }
    close(fd);
    return 0;
}
