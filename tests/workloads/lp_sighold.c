/* A signal handler that waits: SIGUSR1's handler blocks in read(0) until a byte comes, so that a tracer can
 * attach while the process is inside the handler (its frame pushed before the trace began) and see the
 * sigreturn when the byte comes. Then "returned" on stdout, and a second read(0) until the next byte. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void wait_byte(int sig) {
    char c;
    (void)sig;
    read(0, &c, 1);
}

int main(void) {
    struct sigaction a;
    memset(&a, 0, sizeof(a));
    a.sa_handler = wait_byte;
    sigaction(SIGUSR1, &a, NULL);
    raise(SIGUSR1);
    write(1, "returned\n", 9);
    char c;
    read(0, &c, 1);
    return 0;
}
