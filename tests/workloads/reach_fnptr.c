/* reach tests: dispatch through a table of function pointers (a VFS-like ops table in .data.rel.ro).
 * Built twice: with RELA relocations and with -z pack-relative-relocs (DT_RELR), where the table's
 * pointers are relocated by DT_RELR alone. Each op makes a syscall no other code of the program makes. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct ops { const char *name; int (*run)(int fd); };

static int op_sync(int fd) { return fdatasync(fd); }
static int op_lock(int fd) { return flock(fd, LOCK_EX); }
static int op_advise(int fd) { return posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); }
static int op_readahead(int fd) { return (int)readahead(fd, 0, 4096); }

static const struct ops table[] = {
    {"sync", op_sync}, {"lock", op_lock}, {"advise", op_advise}, {"readahead", op_readahead},
};

int main(int argc, char **argv)
{
    const char *want = argc > 1 ? argv[1] : "sync";
    char path[] = "/tmp/reach-fnptr-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    unlink(path);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, want) == 0)
            printf("%s -> %d\n", table[i].name, table[i].run(fd));
    return 0;
}
