/* learner tests: a small workload whose extra behaviour is chosen by argv[1].
   Always: forks a child (exit 7), makes an AF_INET UDP and an AF_UNIX socket.
   Then, by mode:
     base     nothing more
     packet   socket(AF_PACKET, SOCK_RAW, 0)
     packethi socket(AF_PACKET, ...) with bit 32 of the domain register set (ignored by the kernel)
     userns   clone(CLONE_NEWUSER | SIGCHLD)
     unshare  unshare(CLONE_NEWUSER)
     aslr     personality(ADDR_NO_RANDOMIZE)
     bpf      bpf(BPF_MAP_CREATE, NULL, 0) (EPERM when a filter denies it, another errno otherwise)
     newsys   getcpu(), a harmless call the other modes never make
   Prints "<call> ok" for what worked; a failed call prints "<call>: <strerror>" and exits 4. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int fail(const char *what) { printf("%s: %s\n", what, strerror(errno)); return 4; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "base";
    int st;
    pid_t p = fork();
    if (p < 0) return fail("fork");
    if (p == 0) _exit(7);
    waitpid(p, &st, 0);
    printf("fork ok %d\n", WEXITSTATUS(st));
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return fail("socket(AF_INET)");
    close(s);
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return fail("socket(AF_UNIX)");
    close(s);
    printf("sockets ok\n");
    fflush(stdout);
    if (strcmp(mode, "packet") == 0) {
        s = socket(AF_PACKET, SOCK_RAW, 0);
        if (s < 0) return fail("socket(AF_PACKET)");
        close(s);
        printf("socket(AF_PACKET) ok\n");
    } else if (strcmp(mode, "packethi") == 0) {
        /* the same, with garbage in the upper half of the register: the kernel reads an int */
        long r = syscall(SYS_socket, (1UL << 32) | AF_PACKET, SOCK_RAW, 0);
        if (r < 0) return fail("socket(AF_PACKET+upper bits)");
        close((int)r);
        printf("socket(AF_PACKET+upper bits) ok\n");
    } else if (strcmp(mode, "userns") == 0) {
        long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (c < 0) return fail("clone(CLONE_NEWUSER)");
        if (c == 0) _exit(0);
        waitpid((pid_t)c, &st, 0);
        printf("clone(CLONE_NEWUSER) ok\n");
    } else if (strcmp(mode, "unshare") == 0) {
        if (unshare(CLONE_NEWUSER) < 0) return fail("unshare(CLONE_NEWUSER)");
        printf("unshare(CLONE_NEWUSER) ok\n");
    } else if (strcmp(mode, "aslr") == 0) {
        if (personality(ADDR_NO_RANDOMIZE) < 0) return fail("personality(ADDR_NO_RANDOMIZE)");
        printf("personality(ADDR_NO_RANDOMIZE) ok\n");
    } else if (strcmp(mode, "bpf") == 0) {
        long r = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0);
        if (r < 0) return fail("bpf");
        printf("bpf ok\n");
    } else if (strcmp(mode, "newsys") == 0) {
        unsigned cpu = 0, node = 0;
        if (syscall(SYS_getcpu, &cpu, &node, NULL) < 0) return fail("getcpu");
        printf("getcpu ok\n");
    }
    return 0;
}
