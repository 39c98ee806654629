/*
 * echo_client.c - closed-loop TCP echo load generator (single thread, epoll).
 *
 * Usage: echo_client HOST PORT CONNECTIONS SIZE DURATION_SECONDS
 *
 * Opens CONNECTIONS connections (TCP_NODELAY) in batches of 100; each batch is
 * confirmed by a 1-byte echo per connection (unmeasured) before the next one
 * starts, so the server's listen backlog is never overrun. Then each
 * connection repeatedly sends SIZE bytes and waits until SIZE bytes have come
 * back (one round trip), for DURATION_SECONDS.
 * Round trips still in flight at the deadline are not counted.
 *
 * Prints one JSON line to stdout:
 *   {"connections":C,"size":S,"seconds":T,"roundTrips":N,"rtps":N/T,
 *    "bytesPerSec":N*S/T,"p50us":..,"p99us":..,"maxUs":..,"errors":E}
 * bytesPerSec counts echoed payload in one direction. Latencies go into a
 * fixed log-linear histogram (64 sub-buckets per power of two, ~1.6% error);
 * maxUs is exact. errors = connections that failed/closed during the run.
 * Exits 1 (one line on stderr) if any connection cannot be established.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 100
#define CONNECT_TIMEOUT_MS 10000
#define SUB_BITS 6
#define NBUCKETS (59 << SUB_BITS)

struct conn { int fd; int alive; uint32_t ev; size_t sent, rcvd; uint64_t t0; };

static uint64_t hist[NBUCKETS], hist_n, max_ns;
static size_t size;
static char *payload, rbuf[64 * 1024];
static int ep;
static long errors, nalive;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int bucket_of(uint64_t v) {
    if (v < (1u << SUB_BITS)) return (int)v;
    int shift = 63 - __builtin_clzll(v) - SUB_BITS;
    return ((shift + 1) << SUB_BITS) + (int)((v >> shift) & ((1u << SUB_BITS) - 1));
}

static double bucket_mid(int b) {   /* midpoint of the bucket's value range */
    if (b < (1 << SUB_BITS)) return b;
    int shift = (b >> SUB_BITS) - 1;
    uint64_t lo = (uint64_t)((1 << SUB_BITS) + (b & ((1 << SUB_BITS) - 1))) << shift;
    return (double)lo + ((double)((uint64_t)1 << shift) - 1) / 2.0;
}

static double percentile_us(double p) {
    if (!hist_n) return 0;
    uint64_t rank = (uint64_t)(p * (double)hist_n + 0.999999), acc = 0;
    if (rank < 1) rank = 1;
    for (int b = 0; b < NBUCKETS; b++)
        if ((acc += hist[b]) >= rank) {
            double v = bucket_mid(b);
            return (v > (double)max_ns ? (double)max_ns : v) / 1000.0;
        }
    return (double)max_ns / 1000.0;
}

static void die(const char *what, const char *detail) {
    fprintf(stderr, "echo_client: %s: %s\n", what, detail);
    exit(1);
}

static void fail(struct conn *c) {  /* connection broke during the run */
    if (!c->alive) return;
    c->alive = 0; errors++; nalive--;
    close(c->fd);
}

static void set_events(struct conn *c, uint32_t ev) {  /* epoll_ctl only on change */
    if (c->ev == ev) return;
    struct epoll_event e = { .events = ev, .data.ptr = c };
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) < 0) fail(c);
    c->ev = ev;
}

/* Push as much of the current request as the socket takes. */
static void pump_send(struct conn *c) {
    while (c->sent < size) {
        ssize_t n = send(c->fd, payload + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (n > 0) { c->sent += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_events(c, EPOLLIN | EPOLLOUT); return;
        }
        fail(c); return;
    }
}

static void start_round(struct conn *c) {
    c->sent = c->rcvd = 0;
    c->t0 = now_ns();
    pump_send(c);
    if (c->alive && c->sent == size) set_events(c, EPOLLIN);
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS SIZE DURATION_SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2];
    long nconn = atol(argv[3]);
    size = (size_t)atol(argv[4]);
    double duration = atof(argv[5]);
    if (nconn < 1 || size < 1 || duration <= 0) die("bad arguments", "need CONNECTIONS>=1 SIZE>=1 DURATION>0");

    struct rlimit rl;   /* make room for the sockets if the hard limit allows */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 32) {
        rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    if (!(payload = malloc(size))) die("malloc", strerror(errno));
    for (size_t i = 0; i < size; i++) payload[i] = (char)('a' + i % 26);

    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) die("getaddrinfo", gai_strerror(gai));

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)nconn, sizeof *conns);
    struct epoll_event *evs = calloc(1024, sizeof *evs);
    if (ep < 0 || !conns || !evs) die("setup", strerror(errno));

    /* Connect phase, in batches of BATCH: non-blocking connect, then a 1-byte
     * echo per connection (not measured) proving the server accepted it, so
     * the next batch cannot overrun the listen backlog. */
    for (long base = 0; base < nconn; base += BATCH) {
        long end = base + BATCH < nconn ? base + BATCH : nconn, pending = end - base;
        for (long i = base; i < end; i++) {
            struct conn *c = &conns[i];
            c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c->fd < 0) die("socket", strerror(errno));
            int one = 1;
            setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
                die("connect", strerror(errno));
            struct epoll_event e = { .events = EPOLLOUT, .data.ptr = c };
            if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0) die("epoll_ctl", strerror(errno));
            c->ev = EPOLLOUT;
        }
        uint64_t deadline = now_ns() + (uint64_t)CONNECT_TIMEOUT_MS * 1000000u;
        while (pending > 0) {
            int64_t left = (int64_t)(deadline - now_ns());
            if (left <= 0) die("connect", "timed out (connect or first echo)");
            int n = epoll_wait(ep, evs, 1024, (int)(left / 1000000) + 1);
            if (n < 0 && errno != EINTR) die("epoll_wait", strerror(errno));
            for (int k = 0; k < n; k++) {
                struct conn *c = evs[k].data.ptr;
                if (c->alive) continue;                       /* earlier batch */
                if (c->ev == EPOLLOUT) {                      /* connect finished */
                    int err = 0; socklen_t len = sizeof err;
                    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    if (err) die("connect", strerror(err));
                    if (send(c->fd, "!", 1, MSG_NOSIGNAL) != 1) die("connect", strerror(errno));
                    set_events(c, EPOLLIN);
                    if (c->ev != EPOLLIN) die("epoll_ctl", strerror(errno));
                } else {                                      /* first echo */
                    char b;
                    ssize_t r = recv(c->fd, &b, 1, 0);
                    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
                    if (r <= 0) die("connect", r ? strerror(errno) : "closed by server");
                    c->alive = 1; pending--;
                }
            }
        }
    }
    freeaddrinfo(ai);

    /* Measurement phase. */
    uint64_t start = now_ns(), stop = start + (uint64_t)(duration * 1e9), rtrips = 0;
    nalive = nconn;
    for (long i = 0; i < nconn; i++) start_round(&conns[i]);
    for (;;) {
        uint64_t t = now_ns();
        if (t >= stop) break;
        if (nalive <= 0) break;                         /* every connection failed */
        int n = epoll_wait(ep, evs, 1024, (int)((stop - t) / 1000000) + 1);
        if (n < 0 && errno != EINTR) die("epoll_wait", strerror(errno));
        for (int k = 0; k < n; k++) {
            struct conn *c = evs[k].data.ptr;
            if (!c->alive) continue;
            if ((evs[k].events & EPOLLOUT) && c->sent < size) {
                pump_send(c);
                if (c->alive && c->sent == size) set_events(c, EPOLLIN);
            }
            while (c->alive && (evs[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
                ssize_t r = recv(c->fd, rbuf, sizeof rbuf, 0);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (r <= 0) { fail(c); break; }
                c->rcvd += (size_t)r;
                if (c->rcvd > size) { fail(c); break; }   /* protocol violation */
                if (c->rcvd == size && c->sent == size) {
                    uint64_t t1 = now_ns(), lat = t1 - c->t0;
                    if (t1 >= stop) break;                  /* finished after deadline */
                    hist[bucket_of(lat)]++; hist_n++; rtrips++;
                    if (lat > max_ns) max_ns = lat;
                    start_round(c);
                    break;
                }
            }
        }
    }
    double secs = (double)(now_ns() - start) / 1e9;
    if (secs > duration) secs = duration;   /* rounds after the deadline are ignored */
    printf("{\"connections\":%ld,\"size\":%zu,\"seconds\":%.3f,\"roundTrips\":%llu,"
           "\"rtps\":%.1f,\"bytesPerSec\":%.1f,\"p50us\":%.1f,\"p99us\":%.1f,"
           "\"maxUs\":%.1f,\"errors\":%ld}\n",
           nconn, size, secs, (unsigned long long)rtrips, (double)rtrips / secs,
           (double)rtrips * (double)size / secs, percentile_us(0.50), percentile_us(0.99),
           (double)max_ns / 1000.0, errors);
    fflush(stdout);
    for (long i = 0; i < nconn; i++) if (conns[i].alive) close(conns[i].fd);
    close(ep); free(conns); free(evs); free(payload);
    return 0;
}
