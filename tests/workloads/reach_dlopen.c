/* reach tests: a library loaded at run time. The plugin (reach_plugin.c) makes membarrier(2), which
 * nothing in this program or its DT_NEEDED libraries makes. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    const char *lib = argc > 1 ? argv[1] : "./libreach_plugin.so";
    void *h = dlopen(lib, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    long (*run)(void) = (long (*)(void))dlsym(h, "plugin_run");
    printf("plugin_run -> %ld\n", run ? run() : -1L);
    return 0;
}
