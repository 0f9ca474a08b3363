/* A stand-in for `buildctl dial-stdio`, for tests/remote_container.rs: it reaches the
   BuildKit inside dockerd (whose socket the container has at /var/run/docker.sock) by
   upgrading POST /grpc to h2c, then relays stdin to the daemon and the daemon to stdout,
   as the real command relays buildkitd's socket. Built with `cc -static`, so it runs in
   any container. */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char UPGRADE[] =
    "POST /grpc HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads the response head into buf; returns where the bytes after it start, or NULL. */
static char *read_head(int fd, char *buf, size_t cap, size_t *have) {
    for (;;) {
        for (size_t i = 0; i + 4 <= *have; i++) {
            if (memcmp(buf + i, "\r\n\r\n", 4) == 0) return buf + i + 4;
        }
        if (*have == cap) return NULL;
        ssize_t r = read(fd, buf + *have, cap - *have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return NULL;
        *have += (size_t)r;
    }
}

int main(int argc, char **argv) {
    if (argc != 2 || strcmp(argv[1], "dial-stdio") != 0) {
        fputs("usage: buildctl dial-stdio\n", stderr);
        return 2;
    }
    int daemon = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, "/var/run/docker.sock", sizeof addr.sun_path - 1);
    if (daemon < 0 || connect(daemon, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("buildctl: connect /var/run/docker.sock");
        return 1;
    }
    if (write_all(daemon, UPGRADE, sizeof UPGRADE - 1) != 0) {
        perror("buildctl: write");
        return 1;
    }

    static char buf[1 << 16];
    size_t have = 0;
    char *body = read_head(daemon, buf, sizeof buf, &have);
    if (!body) {
        fputs("buildctl: the daemon closed before answering the upgrade\n", stderr);
        return 1;
    }
    if (have < 12 || memcmp(buf + 9, "101", 3) != 0) {
        fprintf(stderr, "buildctl: the daemon refused the upgrade: %.*s\n", (int)(body - buf), buf);
        return 1;
    }
    /* The daemon may have sent its first HTTP/2 frames in the same read as the head. */
    if (write_all(1, body, (size_t)(buf + have - body)) != 0) return 1;

    struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = daemon, .events = POLLIN}};
    const int to[2] = {daemon, 1};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            perror("buildctl: poll");
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = read(fds[i].fd, buf, sizeof buf);
            if (r < 0 && errno == EINTR) continue;
            /* Either side closing ends the relay, as the real command does. */
            if (r <= 0 || write_all(to[i], buf, (size_t)r) != 0) return 0;
        }
    }
}
