/* eBPF capability test workload: chown a file, bind a port below 1024 on 127.0.0.1,
 * open a raw socket. Exits 0 only when all three succeed; prints what failed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FILE PORT\n", argv[0]);
        return 2;
    }
    int bad = 0;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || close(fd) < 0) { perror("open"); return 2; }
    if (chown(argv[1], 65534, 65534) < 0) { perror("chown"); bad = 1; }

    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0) { perror("bind"); bad = 1; }
    close(s);

    int r = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (r < 0) { perror("socket(SOCK_RAW)"); bad = 1; } else close(r);
    return bad;
}
