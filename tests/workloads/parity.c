// Small deterministic workloads for the backend-parity tests (tests/test_backend_parity.py):
// ptrace and eBPF must record the same facts for each. Run in a directory prepared by the test:
//   d/f1  d/sub/f2  d/a  link -> d/sub  flink -> d/f1
// usage: parity MODE      (exit 0 on success; every step is checked)
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static void must(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "parity: %s: %s\n", what, strerror(errno));
        exit(1);
    }
}

static void rd(int dirfd, const char *name) {
    int fd = openat(dirfd, name, O_RDONLY);
    must(fd >= 0, name);
    close(fd);
}

// opens relative to a directory fd
static void m_dirfd(void) {
    int d = open("d", O_RDONLY | O_DIRECTORY);
    must(d >= 0, "d");
    rd(d, "f1");
    rd(d, "sub/f2");
    int sub = openat(d, "sub", O_RDONLY | O_DIRECTORY);
    must(sub >= 0, "sub");
    rd(sub, "../f1");
    close(sub);
    close(d);
}

// chdir / fchdir, then relative opens
static void m_chdir(void) {
    int top = open(".", O_RDONLY | O_DIRECTORY);
    must(chdir("d/sub") == 0, "chdir d/sub");
    rd(AT_FDCWD, "f2");
    must(chdir("..") == 0, "chdir ..");
    rd(AT_FDCWD, "f1");
    must(fchdir(top) == 0, "fchdir");
    rd(AT_FDCWD, "d/a");
    close(top);
}

// .. and symlinks (to a directory, to a file, .. after a symlink)
static void m_links(void) {
    rd(AT_FDCWD, "d/sub/../f1");
    rd(AT_FDCWD, "link/f2");
    rd(AT_FDCWD, "link/../f1");   // the kernel follows link first: link/.. is d
    rd(AT_FDCWD, "flink");
    rd(AT_FDCWD, "./d/./sub//f2");
}

// O_CREAT on an existing file and on new ones (open, openat, creat, O_EXCL)
static void m_creat(void) {
    int fd = open("d/f1", O_WRONLY | O_CREAT, 0600);
    must(fd >= 0, "existing");
    close(fd);
    fd = open("d/new1", O_WRONLY | O_CREAT | O_EXCL, 0600);
    must(fd >= 0, "new1");
    close(fd);
    fd = creat("d/new2", 0600);
    must(fd >= 0, "new2");
    close(fd);
    int d = open("d", O_RDONLY | O_DIRECTORY);
    fd = openat(d, "new3", O_RDWR | O_CREAT, 0600);
    must(fd >= 0, "new3");
    close(fd);
    close(d);
}

// rename / link / symlink / mkdir / unlink, absolute-free and relative to a dirfd
static void m_names(void) {
    must(rename("d/a", "d/b") == 0, "rename");
    must(link("d/b", "d/c") == 0, "link");
    must(symlink("b", "d/s") == 0, "symlink");
    must(mkdir("d/m", 0700) == 0, "mkdir");
    int d = open("d", O_RDONLY | O_DIRECTORY);
    must(renameat(d, "s", AT_FDCWD, "d/m/s2") == 0, "renameat");
    must(unlinkat(d, "c", 0) == 0, "unlinkat");
    must(linkat(d, "b", d, "sub/b2", 0) == 0, "linkat");
    close(d);
}

// a failed open and failed connects (a unix path that does not exist, a closed TCP port)
static void m_failed(void) {
    must(open("d/missing", O_RDONLY) < 0 && errno == ENOENT, "open missing");
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "d/nosock");
    must(connect(s, (struct sockaddr *)&un, sizeof(un)) < 0, "connect unix");
    close(s);
    s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(0x7f000001)};
    must(connect(s, (struct sockaddr *)&in, sizeof(in)) < 0, "connect tcp");
    close(s);
}

static void *thread_main(void *arg) {
    rd(AT_FDCWD, (const char *)arg);
    return 0;
}

// threads opening files
static void m_threads(void) {
    pthread_t t1, t2;
    must(pthread_create(&t1, 0, thread_main, "d/f1") == 0, "thread 1");
    must(pthread_create(&t2, 0, thread_main, "d/sub/f2") == 0, "thread 2");
    pthread_join(t1, 0);
    pthread_join(t2, 0);
}

// fork + exec of another program, which reads a file relative to a directory it chdirs to
static void m_forkexec(void) {
    pid_t pid = fork();
    must(pid >= 0, "fork");
    if (pid == 0) {
        if (chdir("d") != 0)
            _exit(2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl("/bin/cat", "cat", "f1", (char *)0);
        _exit(127);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    must(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
}

// the ground-truth program: dirfds, chdir, symlinks and .., and an exit right after the last open
// (nothing is left to ask /proc about afterwards)
static void m_exitnow(void) {
    int d = open("d", O_RDONLY | O_DIRECTORY);
    must(d >= 0, "d");
    must(chdir("link") == 0, "chdir link");          // -> d/sub
    rd(AT_FDCWD, "f2");
    rd(AT_FDCWD, "../f1");                           // .. of d/sub: d
    rd(d, "sub/../a");
    must(fchdir(d) == 0, "fchdir d");
    int fd = openat(AT_FDCWD, "../flink", O_RDONLY);  // flink -> d/f1, from d: ../flink
    must(fd >= 0, "../flink");
    _exit(0);
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } modes[] = {{"dirfd", m_dirfd}, {"chdir", m_chdir}, {"links", m_links}, {"creat", m_creat},
                 {"names", m_names}, {"failed", m_failed}, {"threads", m_threads}, {"forkexec", m_forkexec},
                 {"exitnow", m_exitnow}};
    if (argc != 2) {
        fprintf(stderr, "usage: parity MODE\n");
        return 2;
    }
    for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(argv[1], modes[i].name) == 0) {
            modes[i].fn();
            return 0;
        }
    fprintf(stderr, "parity: unknown mode %s\n", argv[1]);
    return 2;
}
