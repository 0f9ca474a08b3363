/* Asks the agent at $SSH_AUTH_SOCK for its identities; prints their count and the length
   of the first one's public key blob. Built static by the tests: the base image has no
   Unix-socket client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

static int read_full(int fd, unsigned char *buf, size_t n) {
    while (n > 0) {
        ssize_t got = read(fd, buf, n);
        if (got <= 0) return -1;
        buf += got; n -= (size_t)got;
    }
    return 0;
}

static unsigned long be32(const unsigned char *p) {
    return ((unsigned long)p[0] << 24) | ((unsigned long)p[1] << 16) | ((unsigned long)p[2] << 8) | p[3];
}

int main(void) {
    const char *path = getenv("SSH_AUTH_SOCK");
    if (!path) { fputs("no agent socket\n", stderr); return 2; }
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror(path); return 1; }
    const unsigned char request[] = { 0, 0, 0, 1, 11 };
    if (write(fd, request, sizeof request) != sizeof request) { perror("write"); return 1; }
    unsigned char head[4];
    if (read_full(fd, head, 4) != 0) { fputs("no reply\n", stderr); return 1; }
    unsigned long len = be32(head);
    if (len < 5 || len > 65536) { fputs("bad reply length\n", stderr); return 1; }
    unsigned char *body = malloc(len);
    if (!body || read_full(fd, body, len) != 0) { fputs("short reply\n", stderr); return 1; }
    if (body[0] != 12) { fprintf(stderr, "reply type %d\n", body[0]); return 1; }
    unsigned long count = be32(body + 1);
    printf("identities %lu", count);
    if (count > 0 && len >= 9) printf(" blob %lu", be32(body + 5));
    printf("\n");
    return 0;
}
