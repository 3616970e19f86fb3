/* A 64-bit program that can also make a call through the i386 entry point (int $0x80).
 * "64": getpid through the x86_64 entry; "int80": getpid (i386 number 20) through int $0x80.
 * Prints what the call returned; exits 0 when it returned a pid. */
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long r;
    if (argc > 1 && argv[1][0] == 'i') {
        __asm__ volatile ("int $0x80" : "=a"(r) : "a"(20L) : "memory");
        printf("int80 getpid: %s\n", r > 0 ? "ok" : "denied");
    } else {
        r = syscall(SYS_getpid);
        printf("x86_64 getpid: %s\n", r > 0 ? "ok" : "denied");
    }
    return r > 0 ? 0 : 1;
}
