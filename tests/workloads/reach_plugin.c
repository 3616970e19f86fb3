/* reach tests: the plugin reach_dlopen.c loads (membarrier through syscall(2)). */
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

long plugin_run(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
}
