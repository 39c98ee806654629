/*
 * epoll_echo_server.c - single-threaded, level-triggered epoll TCP echo server.
 *
 * Reference implementation for socketkit's loopback benchmarks.
 *
 * Usage: epoll_echo_server PORT [HOST]     (HOST defaults to 127.0.0.1;
 *        IPv6 if HOST contains ':'; PORT 0 picks a free port)
 * Prints "listening on <port>" (flushed) once bound. Exits 0 on SIGINT/SIGTERM.
 *
 * Backpressure: when a write is partial, the unsent bytes are kept per
 * connection, the connection is switched from EPOLLIN to EPOLLOUT, and it is
 * not read again until everything pending has been written.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (64 * 1024)
#define MAX_EVENTS 1024

struct conn {
    int fd;
    size_t off, len;   /* pending bytes are buf[off, len) */
    char *buf;         /* allocated lazily, only while a write is pending */
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static int ep, spare_fd = -1;
static char rbuf[BUF_SIZE];

static void conn_close(struct conn *c) {
    close(c->fd);              /* close() also removes it from the epoll set */
    free(c->buf);
    free(c);
}

static int set_events(struct conn *c, uint32_t events) {
    struct epoll_event ev = { .events = events, .data.ptr = c };
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write pending bytes. Returns 0 if all written, 1 if still pending, -1 on error. */
static int flush_pending(struct conn *c) {
    while (c->off < c->len) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (n > 0) { c->off += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        return -1;
    }
    c->off = c->len = 0;
    return 0;
}

static void on_writable(struct conn *c) {
    int r = flush_pending(c);
    if (r < 0) { conn_close(c); return; }
    if (r == 0 && set_events(c, EPOLLIN) < 0) conn_close(c);  /* resume reading */
}

static void on_readable(struct conn *c) {
    for (int rounds = 0; rounds < 16; rounds++) {   /* bounded for fairness */
        ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (n == 0) { conn_close(c); return; }       /* peer closed */
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            conn_close(c); return;
        }
        ssize_t w = 0;
        while (w < n) {
            ssize_t k = send(c->fd, rbuf + w, (size_t)(n - w), MSG_NOSIGNAL);
            if (k > 0) { w += k; continue; }
            if (k < 0 && errno == EINTR) continue;
            if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            conn_close(c); return;
        }
        if (w < n) {                                /* partial: keep rest, apply backpressure */
            if (!c->buf && !(c->buf = malloc(BUF_SIZE))) { conn_close(c); return; }
            memcpy(c->buf, rbuf + w, (size_t)(n - w));
            c->off = 0; c->len = (size_t)(n - w);
            if (set_events(c, EPOLLOUT) < 0) conn_close(c);
            return;
        }
        if ((size_t)n < sizeof rbuf) return;  /* short read: likely drained (LT re-arms if not) */
    }
}

static void on_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd >= 0) {
                /* Out of fds: shed this connection via the spare fd, otherwise the
                 * level-triggered listener would spin. */
                close(spare_fd);
                int shed = accept(lfd, NULL, NULL);
                if (shed >= 0) close(shed);
                spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (shed < 0) return;              /* queue drained meanwhile */
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) perror("accept4");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) { close(fd); continue; }
        c->fd = fd;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) { close(fd); free(c); }
    }
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [HOST]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    const char *host = argc > 2 ? argv[2] : "127.0.0.1";
    struct sockaddr_storage ss; memset(&ss, 0, sizeof ss);
    socklen_t slen;
    int family = strchr(host, ':') ? AF_INET6 : AF_INET;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6; a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
        slen = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET; a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1) { fprintf(stderr, "bad host %s\n", host); return 2; }
        slen = sizeof *a;
    }

    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;                    /* no SA_RESTART: epoll_wait gets EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;                             /* allow as many fds as the hard limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl);
    }

    int lfd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) { perror("socket"); return 1; }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&ss, slen) < 0) { perror("bind"); return 1; }
    if (listen(lfd, 4096) < 0) { perror("listen"); return 1; }
    slen = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &slen);
    port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                    : ((struct sockaddr_in *)&ss)->sin_port);

    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("epoll_create1"); return 1; }
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };  /* NULL = listener */
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    printf("listening on %d\n", port);
    fflush(stdout);

    struct epoll_event evs[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait"); return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c) { on_accept(lfd); continue; }
            if (c->len > c->off) on_writable(c);   /* pending: only EPOLLOUT/ERR/HUP registered */
            else on_readable(c);                    /* EPOLLIN, ERR, HUP all end up in recv() */
        }
    }
    close(lfd);
    close(ep);
    return 0;
}
