/* reach tests: the i386 entry point (int $0x80) from 64-bit code: getpid is i386 call 20. */
#include <stdio.h>

int main(void)
{
    long ret;
    __asm__ volatile ("mov $20, %%eax\n\tint $0x80" : "=a"(ret) : : "memory");
    printf("i386 getpid -> %ld\n", ret);
    return 0;
}
