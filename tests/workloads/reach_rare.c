/* reach tests: a dangerous call on a rarely taken path.
 * Default: prints and exits. "--rare": unshare(CLONE_NEWUSER) and bpf(2) through syscall(2).
 * The trace of the default path never sees unshare or bpf; static reachability must list both. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int rare(void)
{
    int r = unshare(CLONE_NEWUSER);
    long b = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0);
    printf("unshare=%d bpf=%ld\n", r, b);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--rare") == 0)
        return rare();
    printf("common path\n");
    return 0;
}
