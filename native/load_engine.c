/*
 * socketkit's native load engine (Linux): the data plane of `socketkit load --engine native`.
 *
 * Native threads, each with its own epoll loop, open their share of the connections (paced and
 * bounded like the TypeScript engine, each confirmed by a one-byte echo), then drive them: closed
 * loop (send, wait for the echo, send the next) or open loop (request k of a thread due at
 * t0 + k / rate on connection k mod C, its latency counted from that scheduled time, so a stall
 * is not excused: no coordinated omission). Every echo is checked byte for byte. Stream (raw
 * bytes over TCP or a Unix socket), framed (4-byte big-endian length, then the payload) and UDP
 * (each datagram of 4 bytes or more tagged with its sequence number, so a late echo of a lost
 * one is never taken for the current one).
 *
 * The accounting is that of src/load/run.ts, which stays the readable reference: every request
 * counted once (scheduled = completed + failed + unsent), failures by reason, errors by id. An
 * error id is an errno (0..511; TypeScript maps it to a socketkit code exactly as it maps Node's
 * system errors) or one of the E_* ids below.
 *
 * Latencies (µs, at least 1) go into HdrHistogram-compatible buckets (1 µs lowest, 3 significant
 * digits: 2048 sub-buckets, the layout of hdr-histogram-js), recorded by the thread without a
 * lock and merged into a shared batch every few milliseconds; JavaScript takes the batch (the
 * non-empty buckets, and the exact min and max) when it polls, and records them into its own
 * histograms. Counters cross the same way. Nothing crosses per message.
 *
 * JS API:
 *   loadStart(config) -> handle       starts the threads (connecting at once)
 *   loadPoll(handle) -> object        counters, and the latencies and errors since the last poll
 *   loadGo(handle)                    every thread is connected: start the measured run
 *   loadStop(handle, interrupted)     stop (interrupted: at once, no drain)
 *   loadFree(handle)                  stops, joins the threads, closes every descriptor
 * Descriptors are owned by their thread from socket() to close(); no other thread touches them.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "modules.h"

enum { P_STREAM = 0, P_FRAMED = 1, P_UDP = 2 };

/* Error ids: an errno below E_ERRNO_LIMIT, or one of these. */
#define E_ERRNO_LIMIT 512
#define E_TIMEOUT 512        /* ERR_TIMEOUT: no echo in time */
#define E_MISMATCH 513       /* ERR_ECHO_MISMATCH */
#define E_CLOSED 514         /* ERR_CONN_CLOSED: the peer ended the stream */
#define E_FRAME_TOO_LARGE 515 /* ERR_FRAME_TOO_LARGE: a reply frame over the limit */
#define E_ABORTED 516        /* ERR_ABORTED: unanswered when an abort cut the run short */
#define E_COUNT 517

enum { R_TIMEOUT = 0, R_CONNECTION = 1, R_MISMATCH = 2, R_UNANSWERED = 3 };

/* In open loop, most requests in flight on one connection (MAX_OUTSTANDING_PER_CONNECTION). */
#define MAX_OUTSTANDING 1024
#define SEQ_BYTES 4
#define RBUF 65536

/* ---- HdrHistogram buckets: lowest 1, 3 significant digits (sub-bucket count 2048). */
#define H_HALF_MAG 10
#define H_HALF 1024
#define H_BUCKETS 31 /* values up to 2^41 - 1 µs (25 days) */
#define H_LEN ((H_BUCKETS + 1) * H_HALF)
#define H_MAXV ((UINT64_C(1) << (H_BUCKETS + H_HALF_MAG)) - 1)

typedef struct {
  uint32_t counts[H_LEN];
  uint32_t lo, hi; /* the index range touched (lo > hi when empty) */
  uint64_t total, min, max;
} hist_t;

static void hist_clear(hist_t* h) {
  if (h->lo <= h->hi) memset(&h->counts[h->lo], 0, (size_t)(h->hi - h->lo + 1) * sizeof h->counts[0]);
  h->lo = H_LEN;
  h->hi = 0;
  h->total = 0;
  h->min = UINT64_MAX;
  h->max = 0;
}

static uint32_t hist_index(uint64_t v) {
  int top = 63 - __builtin_clzll(v | 1);
  int b = top - H_HALF_MAG;
  if (b < 0) b = 0;
  return (uint32_t)((uint64_t)b * H_HALF + (v >> b));
}

/* The lowest value of bucket index i (hdr-histogram-js's valueFromIndex). */
static uint64_t hist_value(uint32_t i) {
  int64_t b = (int64_t)(i / H_HALF) - 1;
  uint64_t sub = i % H_HALF + H_HALF;
  if (b < 0) {
    sub -= H_HALF;
    b = 0;
  }
  return sub << b;
}

static void hist_record(hist_t* h, uint64_t v) {
  if (v < 1) v = 1;
  if (v > H_MAXV) v = H_MAXV;
  uint32_t i = hist_index(v);
  h->counts[i]++;
  if (i < h->lo) h->lo = i;
  if (i > h->hi) h->hi = i;
  h->total++;
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
}

static void hist_merge(hist_t* into, const hist_t* from) {
  if (from->total == 0) return;
  for (uint32_t i = from->lo; i <= from->hi; i++) into->counts[i] += from->counts[i];
  if (from->lo < into->lo) into->lo = from->lo;
  if (from->hi > into->hi) into->hi = from->hi;
  into->total += from->total;
  if (from->min < into->min) into->min = from->min;
  if (from->max > into->max) into->max = from->max;
}

/* ---- Counters a thread publishes. */
typedef struct {
  double opened, open_failed, connection_errors;
  double scheduled, sent, completed, failed, failures[4];
  double unsent_down, unsent_queued, in_flight_at_stop;
  double bytes_sent, bytes_received, stray, alive;
  double connect_ms, seconds;
  double first_error; /* id of the first connect failure, -1 for none */
  double phase;       /* 0 connecting, 1 connected (waiting for go), 2 running, 3 done */
  double interrupted;
  double errors[E_COUNT];
} stats_t;

enum { PH_CONNECTING = 0, PH_READY = 1, PH_RUNNING = 2, PH_DONE = 3 };

/* ---- Configuration, shared read-only by the threads. */
typedef struct {
  int protocol;
  struct sockaddr_storage addr;
  socklen_t addrlen;
  int family; /* AF_INET, AF_INET6, AF_UNIX */
  /* Messages: the bytes on the wire (framed: with the header) and the payload length. */
  uint32_t nmsg;
  uint8_t** wire;
  uint32_t* wire_len;
  uint32_t* payload_len;
  uint32_t max_len;
  double timeout_ms, drain_ms, duration_ms; /* duration_ms < 0: none */
  double connect_rate;                       /* per thread */
  uint32_t connect_concurrency;              /* per thread */
  uint64_t max_message;                      /* framed: the largest reply accepted */
  bool open;                                 /* open loop */
  bool counted;                              /* a request budget was given */
} config_t;

struct engine;

typedef struct {
  uint64_t seq;
  int64_t at;
  bool present;
} slot_t;

enum { C_NEW = 0, C_CONNECTING, C_WARMING, C_OPEN, C_DEAD };

typedef struct {
  int fd;
  uint32_t pos; /* place among this thread's open connections (the schedule's k mod C) */
  uint8_t state;
  bool blocked, writing, want_out;
  uint8_t warm_tries;
  uint64_t sent, done, due;
  int64_t last_send, last_progress, deadline;
  /* The request being written (committed as sent), and how far. */
  uint32_t wmsg, woff;
  /* Stream and framed: bytes of reply `done` checked so far (framed: header included). */
  uint32_t roff;
  uint8_t hdr[4];
  /* UDP: requests in flight, slot seq & (cap - 1), and the oldest that may be there. */
  slot_t* ring;
  uint32_t cap;
  uint64_t ring_lo;
  uint64_t outstanding;
} conn_t;

typedef struct {
  struct engine* eng;
  uint32_t id;
  pthread_t thread;
  bool started;
  int ep, wake, timer;
  uint32_t nconn;
  conn_t* conns;
  conn_t** open_conns;
  uint32_t nopen;
  double requests_budget; /* < 0: none */
  double rate;            /* open loop: requests per second on this thread */
  /* The run's state (this thread only). */
  stats_t st;
  hist_t local;
  int64_t t0, t_last, t_stopped;
  bool running;
  uint64_t in_flight, next_k;
  double per_req_ns;
  uint8_t* rbuf;
  uint8_t* sbuf;
  int64_t last_flush;
  /* Published to JS under `lock`. */
  pthread_mutex_t lock;
  stats_t pub;
  hist_t batch;
} worker_t;

typedef struct engine {
  config_t cfg;
  uint32_t nthreads;
  worker_t* workers;
  pthread_mutex_t ctl;
  pthread_cond_t cond;
  bool go;
  atomic_bool stop;
  atomic_bool interrupt;
  int64_t t_connect;
  /* Errors already handed to JS (poll returns the difference). */
  double errors_seen[E_COUNT];
} engine_t;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t ms_ns(double ms) { return (int64_t)(ms * 1e6); }

static int err_id(int e) { return e > 0 && e < E_ERRNO_LIMIT ? e : EIO; }

static int reason_of(int id) {
  if (id == E_TIMEOUT || id == ETIMEDOUT) return R_TIMEOUT;
  if (id == E_MISMATCH) return R_MISMATCH;
  return R_CONNECTION;
}

/* ---- Publishing to JS. */
static void publish(worker_t* w) {
  pthread_mutex_lock(&w->lock);
  hist_merge(&w->batch, &w->local);
  w->pub = w->st;
  pthread_mutex_unlock(&w->lock);
  hist_clear(&w->local);
  w->last_flush = now_ns();
}

/* ---- Accounting (src/load/run.ts's countError, failRequests, connectionError). */
static void count_error(worker_t* w, int id, double n) { w->st.errors[id] += n; }

static void fail_requests(worker_t* w, double n, int id, int reason) {
  if (n <= 0) return;
  w->st.failed += n;
  w->st.failures[reason] += n;
  count_error(w, id, n);
}

static void stop_run(worker_t* w) {
  if (!w->running) return;
  w->running = false;
  w->t_stopped = now_ns();
  w->st.in_flight_at_stop = (double)w->in_flight;
}

static void close_conn(worker_t* w, conn_t* c) {
  if (c->fd >= 0) {
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  c->state = C_DEAD;
}

/* Asks for EPOLLOUT only while a write waits for room (a writable edge on every ACK would wake the loop for nothing). */
static void want_out(worker_t* w, conn_t* c, bool on) {
  if (c->want_out == on || c->fd < 0) return;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->want_out = on;
}

/* The connection is unusable: its requests outstanding fail with `id`, those due unsent. */
static void fail_conn(worker_t* w, conn_t* c, int id) {
  if (c->state != C_OPEN) return;
  close_conn(w, c);
  w->st.alive--;
  uint64_t outstanding = c->sent - c->done;
  w->in_flight -= outstanding;
  if (outstanding > 0) fail_requests(w, (double)outstanding, id, reason_of(id));
  else if (w->running) {
    w->st.connection_errors++;
    count_error(w, id, 1);
  }
  if (c->due > c->sent) w->st.unsent_down += (double)(c->due - c->sent);
  c->due = c->sent;
  if (w->st.alive <= 0) stop_run(w);
}

/* ---- Writing. */
static void pump(worker_t* w, conn_t* c);

/* Writes what is left of the request being written; false when the connection failed. */
static bool flush_write(worker_t* w, conn_t* c) {
  const config_t* cfg = &w->eng->cfg;
  while (c->writing) {
    const uint8_t* p = cfg->wire[c->wmsg];
    uint32_t len = cfg->wire_len[c->wmsg];
    ssize_t n;
    if (cfg->protocol == P_UDP) {
      p = w->sbuf;
      n = send(c->fd, p, len, MSG_NOSIGNAL);
      if (n >= 0) n = len;
    } else {
      n = send(c->fd, p + c->woff, len - c->woff, MSG_NOSIGNAL);
    }
    if (n >= 0) {
      c->woff += (uint32_t)n;
      if (c->woff >= len) c->writing = false;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      c->blocked = true;
      want_out(w, c, true);
      return true;
    }
    int e = errno;
    if (cfg->protocol == P_UDP) {
      /* The datagram is lost, the socket goes on (as dgram's send callback). */
      c->writing = false;
      uint64_t seq = c->sent - 1;
      slot_t* s = &c->ring[seq & (c->cap - 1)];
      if (s->present && s->seq == seq) {
        s->present = false;
        c->outstanding--;
        c->done++;
        w->in_flight--;
        fail_requests(w, 1, err_id(e), reason_of(err_id(e)));
      }
      return true;
    }
    fail_conn(w, c, err_id(e));
    return false;
  }
  return true;
}

/* UDP: room for request `seq` in the ring, growing it when its slot is taken (up to a bound). */
static bool udp_room(conn_t* c, uint64_t seq) {
  for (;;) {
    slot_t* s = &c->ring[seq & (c->cap - 1)];
    if (!s->present) return true;
    if (c->cap >= 2 * MAX_OUTSTANDING) return false;
    uint32_t cap = c->cap * 2;
    slot_t* ring = calloc(cap, sizeof *ring);
    if (ring == NULL) return false;
    for (uint32_t i = 0; i < c->cap; i++) {
      if (c->ring[i].present) ring[c->ring[i].seq & (cap - 1)] = c->ring[i];
    }
    free(c->ring);
    c->ring = ring;
    c->cap = cap;
  }
}

/* Commits request number `sent` and starts writing it; false when the connection failed. */
static bool send_request(worker_t* w, conn_t* c, int64_t now) {
  const config_t* cfg = &w->eng->cfg;
  uint64_t seq = c->sent++;
  uint32_t m = (uint32_t)(seq % cfg->nmsg);
  c->wmsg = m;
  c->woff = 0;
  c->writing = true;
  w->st.sent++;
  w->in_flight++;
  w->st.bytes_sent += cfg->payload_len[m];
  if (cfg->protocol == P_UDP) {
    uint32_t len = cfg->wire_len[m];
    memcpy(w->sbuf, cfg->wire[m], len);
    if (len >= SEQ_BYTES) {
      uint32_t tag = htonl((uint32_t)seq);
      memcpy(w->sbuf, &tag, SEQ_BYTES);
    }
    slot_t* s = &c->ring[seq & (c->cap - 1)];
    s->seq = seq;
    s->at = now;
    s->present = true;
    c->outstanding++;
  }
  return flush_write(w, c);
}

/* Sends what is due on `c` (closed loop: the next request, once the last is back), `now` being the time. */
static void pump_at(worker_t* w, conn_t* c, int64_t now) {
  if (c->state != C_OPEN || c->blocked || c->writing) return;
  const config_t* cfg = &w->eng->cfg;
  if (!cfg->open) {
    if (!w->running || c->sent != c->done) return;
    if (cfg->protocol == P_UDP && !udp_room(c, c->sent)) return;
    c->last_send = now;
    c->last_progress = now;
    w->st.scheduled++;
    if (!send_request(w, c, now)) return;
    if (w->requests_budget >= 0 && w->st.sent >= w->requests_budget) stop_run(w);
    return;
  }
  while (c->state == C_OPEN && !c->blocked && !c->writing && c->sent < c->due && c->sent - c->done < MAX_OUTSTANDING) {
    if (cfg->protocol == P_UDP && !udp_room(c, c->sent)) return;
    if (c->sent == c->done) c->last_progress = now;
    if (!send_request(w, c, now)) return;
  }
}

static void pump(worker_t* w, conn_t* c) { pump_at(w, c, now_ns()); }

/* ---- Replies. */
static int64_t scheduled_at(const worker_t* w, const conn_t* c, uint64_t seq) {
  return w->t0 + (int64_t)(((double)c->pos + (double)seq * w->nopen) * w->per_req_ns);
}

static void complete(worker_t* w, conn_t* c, uint64_t seq) {
  const config_t* cfg = &w->eng->cfg;
  int64_t now = now_ns();
  int64_t from = cfg->open ? scheduled_at(w, c, seq) : c->last_send;
  int64_t us = (now - from + 500) / 1000;
  hist_record(&w->local, us < 1 ? 1 : (uint64_t)us);
  w->st.completed++;
  w->in_flight--;
  w->st.bytes_received += cfg->payload_len[seq % cfg->nmsg];
  c->last_progress = now;
  w->t_last = now;
  pump_at(w, c, now);
}

/* Stream and framed: checks `n` bytes of reply against what was sent; false when it failed. */
static bool check_bytes(worker_t* w, conn_t* c, const uint8_t* p, size_t n) {
  const config_t* cfg = &w->eng->cfg;
  size_t at = 0;
  while (at < n && c->state == C_OPEN) {
    if (c->done == c->sent) {
      fail_conn(w, c, E_MISMATCH); /* more bytes than were sent, or a message never sent */
      return false;
    }
    uint32_t m = (uint32_t)(c->done % cfg->nmsg);
    const uint8_t* want = cfg->wire[m];
    uint32_t len = cfg->wire_len[m];
    if (cfg->protocol == P_FRAMED && c->roff < 4) {
      while (c->roff < 4 && at < n) c->hdr[c->roff++] = p[at++];
      if (c->roff < 4) return true;
      uint64_t flen = ((uint64_t)c->hdr[0] << 24) | ((uint64_t)c->hdr[1] << 16) | ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
      if (flen > cfg->max_message) {
        fail_conn(w, c, E_FRAME_TOO_LARGE);
        return false;
      }
      if (flen != cfg->payload_len[m]) {
        fail_conn(w, c, E_MISMATCH);
        return false;
      }
      continue;
    }
    size_t k = len - c->roff;
    if (k > n - at) k = n - at;
    if (memcmp(want + c->roff, p + at, k) != 0) {
      fail_conn(w, c, E_MISMATCH);
      return false;
    }
    at += k;
    c->roff += (uint32_t)k;
    if (c->roff == len) {
      c->roff = 0;
      complete(w, c, c->done++);
    }
  }
  return c->state == C_OPEN;
}

static void udp_advance(conn_t* c) {
  while (c->ring_lo < c->sent && !c->ring[c->ring_lo & (c->cap - 1)].present) c->ring_lo++;
}

static void udp_datagram(worker_t* w, conn_t* c, const uint8_t* p, size_t n) {
  const config_t* cfg = &w->eng->cfg;
  slot_t* found = NULL;
  if (n >= SEQ_BYTES) {
    uint32_t tag;
    memcpy(&tag, p, SEQ_BYTES);
    tag = ntohl(tag);
    for (uint64_t s = c->ring_lo; s < c->sent; s++) {
      slot_t* sl = &c->ring[s & (c->cap - 1)];
      if (sl->present && (uint32_t)sl->seq == tag) {
        if (cfg->wire_len[sl->seq % cfg->nmsg] == n) found = sl;
        break;
      }
    }
  } else {
    for (uint64_t s = c->ring_lo; s < c->sent; s++) {
      slot_t* sl = &c->ring[s & (c->cap - 1)];
      if (sl->present && cfg->wire_len[sl->seq % cfg->nmsg] == n) {
        found = sl;
        break;
      }
    }
  }
  if (found == NULL) {
    w->st.stray++;
    return;
  }
  uint64_t seq = found->seq;
  found->present = false;
  c->outstanding--;
  udp_advance(c);
  c->done++;
  uint32_t m = (uint32_t)(seq % cfg->nmsg);
  size_t from = n >= SEQ_BYTES ? SEQ_BYTES : 0;
  if (memcmp(cfg->wire[m] + from, p + from, n - from) != 0) {
    fail_requests(w, 1, E_MISMATCH, R_MISMATCH);
    w->in_flight--;
    c->last_progress = now_ns();
    pump(w, c);
    return;
  }
  /* Closed loop latency counts from this request's send: the ring knows when that was. */
  if (!cfg->open) c->last_send = found->at;
  complete(w, c, seq);
}

static void udp_expire(worker_t* w, conn_t* c, int64_t now) {
  int64_t limit = ms_ns(w->eng->cfg.timeout_ms);
  for (uint64_t s = c->ring_lo; s < c->sent && c->state == C_OPEN; s++) {
    slot_t* sl = &c->ring[s & (c->cap - 1)];
    if (!sl->present) continue;
    if (now - sl->at < limit) break; /* in send order: the rest are younger */
    sl->present = false;
    c->outstanding--;
    c->done++;
    fail_requests(w, 1, E_TIMEOUT, R_TIMEOUT);
    w->in_flight--;
    c->last_progress = now;
    pump(w, c);
  }
  udp_advance(c);
}

/* ---- Opening. */
static const uint8_t WARM_FRAMED[5] = {0, 0, 0, 1, '!'};

static const uint8_t* warm_bytes(int protocol, size_t* len) {
  if (protocol == P_FRAMED) {
    *len = sizeof WARM_FRAMED;
    return WARM_FRAMED;
  }
  *len = 1;
  return WARM_FRAMED + 4;
}

/* A connect or warm-up failure: counted as a connection error (run.ts's connectionError). */
static void open_failed(worker_t* w, conn_t* c, int id) {
  close_conn(w, c);
  w->st.open_failed++;
  w->st.connection_errors++;
  count_error(w, id, 1);
  if (w->st.first_error < 0) w->st.first_error = id;
}

static void send_warm(worker_t* w, conn_t* c, int64_t now) {
  const config_t* cfg = &w->eng->cfg;
  size_t len;
  const uint8_t* p = warm_bytes(cfg->protocol, &len);
  c->state = C_WARMING;
  c->roff = 0;
  c->deadline = now + ms_ns(cfg->protocol == P_UDP ? cfg->timeout_ms / 3 : cfg->timeout_ms);
  if (cfg->protocol == P_UDP && c->deadline <= now) c->deadline = now + 1000000;
  ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
  /* A short first write of at most 5 bytes on a fresh socket does not happen; treat it as a failure. */
  if (n != (ssize_t)len) open_failed(w, c, n < 0 ? err_id(errno) : EIO);
}

static void start_conn(worker_t* w, conn_t* c, int64_t now) {
  const config_t* cfg = &w->eng->cfg;
  int type = (cfg->protocol == P_UDP ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
  int fd = socket(cfg->family, type, 0);
  if (fd < 0) {
    open_failed(w, c, err_id(errno));
    return;
  }
  c->fd = fd;
  if (cfg->family != AF_UNIX && cfg->protocol != P_UDP) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
  if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
    open_failed(w, c, err_id(errno));
    return;
  }
  c->want_out = true;
  c->deadline = now + ms_ns(cfg->timeout_ms);
  int r;
  do r = connect(fd, (const struct sockaddr*)&cfg->addr, cfg->addrlen);
  while (r != 0 && errno == EINTR);
  if (r == 0) {
    c->warm_tries = 1;
    send_warm(w, c, now);
  } else if (errno == EINPROGRESS || (errno == EAGAIN && cfg->family == AF_UNIX)) {
    c->state = C_CONNECTING;
  } else {
    open_failed(w, c, err_id(errno));
  }
}

/* A warming connection has bytes: the warm-up echo, or a failure. */
static void warm_readable(worker_t* w, conn_t* c, int64_t now) {
  const config_t* cfg = &w->eng->cfg;
  size_t len;
  const uint8_t* want = warm_bytes(cfg->protocol, &len);
  for (;;) {
    ssize_t n = recv(c->fd, w->rbuf, RBUF, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      open_failed(w, c, err_id(errno));
      return;
    }
    if (cfg->protocol == P_UDP) {
      if (n == 1 && w->rbuf[0] == '!') {
        c->state = C_OPEN;
        w->st.opened++;
        want_out(w, c, false);
        (void)now;
        return;
      }
      continue; /* a stray from an earlier run */
    }
    if (n == 0) {
      open_failed(w, c, E_CLOSED);
      return;
    }
    if (c->roff + (size_t)n > len || memcmp(want + c->roff, w->rbuf, (size_t)n) != 0) {
      open_failed(w, c, E_MISMATCH);
      return;
    }
    c->roff += (uint32_t)n;
    if (c->roff == len) {
      c->roff = 0;
      c->state = C_OPEN;
      w->st.opened++;
      want_out(w, c, false);
      return;
    }
  }
}

static void connect_event(worker_t* w, conn_t* c, uint32_t events, int64_t now) {
  if (c->state == C_CONNECTING) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      open_failed(w, c, err_id(err));
      return;
    }
    if (events & (EPOLLERR | EPOLLHUP)) {
      open_failed(w, c, ECONNRESET);
      return;
    }
    c->warm_tries = 1;
    send_warm(w, c, now);
    if (c->state != C_WARMING) return;
  }
  if (c->state == C_WARMING && (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) warm_readable(w, c, now);
}

/* ---- The thread. */
static void open_phase(worker_t* w) {
  engine_t* e = w->eng;
  const config_t* cfg = &e->cfg;
  struct epoll_event evs[256];
  uint32_t next = 0, lo = 0;
  int64_t t_connect = now_ns();
  double interval_ns = 1e9 / cfg->connect_rate;
  bool giving_up = false;
  for (;;) {
    int64_t now = now_ns();
    uint32_t in_progress = 0;
    /* Connections before `lo` are open or failed: only the window [lo, next) is in progress. */
    while (lo < next && (w->conns[lo].state == C_OPEN || w->conns[lo].state == C_DEAD)) lo++;
    for (uint32_t i = lo; i < next; i++) {
      conn_t* c = &w->conns[i];
      if (c->state == C_CONNECTING || c->state == C_WARMING) {
        if (now >= c->deadline) {
          if (c->state == C_WARMING && cfg->protocol == P_UDP && c->warm_tries < 3) {
            c->warm_tries++;
            send_warm(w, c, now);
            if (c->state == C_WARMING) in_progress++;
            continue;
          }
          open_failed(w, c, E_TIMEOUT);
        } else {
          in_progress++;
        }
      }
    }
    if (w->st.opened == 0 && w->st.open_failed >= cfg->connect_concurrency) giving_up = true;
    if (atomic_load(&e->stop)) {
      w->st.interrupted = atomic_load(&e->interrupt) ? 1 : 0;
      giving_up = true;
    }
    if (giving_up || (next == w->nconn && in_progress == 0)) break;
    while (next < w->nconn && in_progress < cfg->connect_concurrency && (double)(now - t_connect) >= next * interval_ns) {
      start_conn(w, &w->conns[next], now);
      if (w->conns[next].state == C_CONNECTING || w->conns[next].state == C_WARMING) in_progress++;
      next++;
    }
    int64_t wait_ns = 50000000;
    if (next < w->nconn && in_progress < cfg->connect_concurrency) {
      int64_t due = t_connect + (int64_t)(next * interval_ns) - now;
      if (due < wait_ns) wait_ns = due;
    }
    for (uint32_t i = lo; i < next; i++) {
      conn_t* c = &w->conns[i];
      if ((c->state == C_CONNECTING || c->state == C_WARMING) && c->deadline - now < wait_ns) wait_ns = c->deadline - now;
    }
    if (next < w->nconn && in_progress < cfg->connect_concurrency && wait_ns <= 0) continue;
    int timeout = wait_ns <= 0 ? 0 : (int)((wait_ns + 999999) / 1000000);
    int n = epoll_wait(w->ep, evs, 256, timeout);
    now = now_ns();
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) continue; /* the wake-up descriptor: the loop checks `stop` */
      conn_t* c = evs[i].data.ptr;
      if (c->state == C_CONNECTING || c->state == C_WARMING) connect_event(w, c, evs[i].events, now);
    }
    if (w->pub.opened != w->st.opened || w->pub.open_failed != w->st.open_failed) publish(w);
  }
  /* Connections still being opened were abandoned: no failure of their own. */
  w->nopen = 0;
  for (uint32_t i = 0; i < w->nconn; i++) {
    conn_t* c = &w->conns[i];
    if (c->state == C_CONNECTING || c->state == C_WARMING) close_conn(w, c);
    else if (c->state == C_OPEN) {
      c->pos = w->nopen;
      w->open_conns[w->nopen++] = c;
    }
  }
  w->st.connect_ms = (double)(now_ns() - t_connect) / 1e6;
  w->st.alive = w->nopen;
}

static void arm_timer(worker_t* w, int64_t at) {
  struct itimerspec its = {.it_interval = {0, 0}, .it_value = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000}};
  if (at <= 0) its.it_value.tv_nsec = 1;
  timerfd_settime(w->timer, TFD_TIMER_ABSTIME, &its, NULL);
}


/* Open loop: hands out every request now due, then sets the timer for the next. */
static void tick(worker_t* w) {
  if (!w->running) return;
  int64_t now = now_ns();
  double k = (double)(uint64_t)((double)(now - w->t0) / w->per_req_ns) + 1;
  if (w->requests_budget >= 0 && k > w->requests_budget) k = w->requests_budget;
  uint64_t due_k = (uint64_t)k;
  for (; w->next_k < due_k; w->next_k++) {
    w->st.scheduled++;
    conn_t* c = w->open_conns[w->next_k % w->nopen];
    if (c->state != C_OPEN) {
      w->st.unsent_down++;
      continue;
    }
    c->due++;
    pump(w, c);
  }
  if (w->requests_budget >= 0 && (double)w->next_k >= w->requests_budget) {
    stop_run(w);
    return;
  }
  arm_timer(w, w->t0 + (int64_t)((double)w->next_k * w->per_req_ns));
}

static void readable(worker_t* w, conn_t* c, uint32_t events) {
  const config_t* cfg = &w->eng->cfg;
  for (;;) {
    ssize_t n = recv(c->fd, w->rbuf, RBUF, 0);
    if (n > 0) {
      if (cfg->protocol == P_UDP) {
        udp_datagram(w, c, w->rbuf, (size_t)n);
        if (c->state != C_OPEN) return;
        continue;
      }
      if (!check_bytes(w, c, w->rbuf, (size_t)n)) return;
      /* Edge-triggered: a short read emptied the socket; what comes later raises a new edge. */
      if (n < RBUF && !(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) return;
      continue;
    }
    if (n == 0) {
      if (cfg->protocol == P_UDP) {
        w->st.stray++; /* an empty datagram matches no request */
        continue;
      }
      fail_conn(w, c, E_CLOSED);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    if (cfg->protocol == P_UDP) {
      /* ICMP port unreachable: nobody listens, that ends the connection; other errors pass. */
      if (errno == ECONNREFUSED) {
        fail_conn(w, c, ECONNREFUSED);
        return;
      }
      continue;
    }
    fail_conn(w, c, err_id(errno));
    return;
  }
}

static void check_timeouts(worker_t* w, int64_t now) {
  const config_t* cfg = &w->eng->cfg;
  int64_t limit = ms_ns(cfg->timeout_ms);
  for (uint32_t i = 0; i < w->nopen; i++) {
    conn_t* c = w->open_conns[i];
    if (c->state != C_OPEN) continue;
    if (cfg->protocol == P_UDP) udp_expire(w, c, now);
    else if (c->sent > c->done && now - c->last_progress > limit) fail_conn(w, c, E_TIMEOUT);
  }
}

static void run_phase(worker_t* w) {
  engine_t* e = w->eng;
  const config_t* cfg = &e->cfg;
  struct epoll_event evs[512];
  w->t0 = now_ns();
  w->t_last = w->t0;
  w->t_stopped = INT64_MAX;
  w->running = true;
  w->per_req_ns = cfg->open ? 1e9 / w->rate : 0;
  const int64_t end = cfg->duration_ms >= 0 ? w->t0 + ms_ns(cfg->duration_ms) : INT64_MAX;
  double check_ms = cfg->timeout_ms / 4;
  if (check_ms > 250) check_ms = 250;
  if (check_ms < 10) check_ms = 10;
  const int64_t check_ns = ms_ns(check_ms), flush_ns = 10000000;
  int64_t next_check = w->t0 + check_ns;
  if (w->requests_budget == 0) stop_run(w);
  if (cfg->open) tick(w);
  else
    for (uint32_t i = 0; i < w->nopen && w->running; i++) pump(w, w->open_conns[i]);
  int64_t drain_end = -1;
  for (;;) {
    int64_t now = now_ns();
    if (atomic_load(&e->stop)) {
      if (atomic_load(&e->interrupt)) w->st.interrupted = 1;
      stop_run(w);
    }
    if (w->running && now >= end) stop_run(w);
    if (now >= next_check) {
      check_timeouts(w, now);
      next_check = now + check_ns;
    }
    if (!w->running) {
      if (drain_end < 0) drain_end = (w->st.alive > 0 && w->in_flight > 0 && !w->st.interrupted) ? now + ms_ns(cfg->drain_ms) : now;
      if (w->st.alive <= 0 || w->in_flight == 0 || w->st.interrupted || now >= drain_end) break;
    }
    if (now - w->last_flush >= flush_ns) publish(w);
    int64_t wait = next_check - now;
    if (w->running && end - now < wait) wait = end - now;
    if (!w->running && drain_end - now < wait) wait = drain_end - now;
    if (w->last_flush + flush_ns - now < wait) wait = w->last_flush + flush_ns - now;
    int timeout = wait <= 0 ? 0 : (int)((wait + 999999) / 1000000);
    int n = epoll_wait(w->ep, evs, 512, timeout);
    for (int i = 0; i < n; i++) {
      void* p = evs[i].data.ptr;
      if (p == NULL) {
        uint64_t v;
        if (read(w->wake, &v, sizeof v) < 0) { /* nothing to read: the flag is what counts */
        }
        continue;
      }
      if (p == (void*)w) {
        uint64_t v;
        if (read(w->timer, &v, sizeof v) < 0) { /* spurious */
        }
        tick(w);
        continue;
      }
      conn_t* c = p;
      if (c->state != C_OPEN) continue;
      uint32_t ev = evs[i].events;
      if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) readable(w, c, ev);
      if (c->state == C_OPEN && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && (c->blocked || c->writing)) {
        c->blocked = false;
        if (flush_write(w, c) && !c->blocked && !c->writing) {
          want_out(w, c, false);
          pump(w, c);
        }
      }
    }
  }
  int64_t now = now_ns();
  for (uint32_t i = 0; i < w->nopen; i++) {
    conn_t* c = w->open_conns[i];
    if (c->state != C_OPEN) continue;
    /* Still unanswered after the drain (ERR_TIMEOUT), or when an abort cut it short (ERR_ABORTED). */
    fail_requests(w, (double)(c->sent - c->done), w->st.interrupted ? E_ABORTED : E_TIMEOUT, R_UNANSWERED);
    if (c->due > c->sent) w->st.unsent_queued += (double)(c->due - c->sent);
    close_conn(w, c);
  }
  int64_t until = w->t_stopped < now ? w->t_stopped : now;
  if (w->t_last > until) until = w->t_last;
  double seconds = (double)(until - w->t0) / 1e9;
  w->st.seconds = seconds > 1e-9 ? seconds : 1e-9;
}

static void* thread_main(void* arg) {
  worker_t* w = arg;
  engine_t* e = w->eng;
  open_phase(w);
  w->st.phase = PH_READY;
  publish(w);
  pthread_mutex_lock(&e->ctl);
  while (!e->go && !atomic_load(&e->stop)) pthread_cond_wait(&e->cond, &e->ctl);
  bool go = e->go && !atomic_load(&e->stop);
  pthread_mutex_unlock(&e->ctl);
  if (go && w->nopen > 0) {
    w->st.phase = PH_RUNNING;
    publish(w);
    run_phase(w);
  } else if (atomic_load(&e->interrupt)) {
    w->st.interrupted = 1;
  }
  for (uint32_t i = 0; i < w->nconn; i++) close_conn(w, &w->conns[i]);
  w->st.alive = 0;
  w->st.phase = PH_DONE;
  publish(w);
  return NULL;
}

/* ---- JavaScript. */
#define CHECK(call)                                                                  \
  do {                                                                               \
    if ((call) != napi_ok) {                                                         \
      napi_throw_error(env, "ERR_NATIVE", "socketkit native: " #call " failed");     \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

typedef struct {
  engine_t* eng;
  hist_t poll; /* the threads' batches, merged by loadPoll */
} handle_t;

static void engine_stop(engine_t* e, bool interrupt) {
  if (interrupt) atomic_store(&e->interrupt, true);
  atomic_store(&e->stop, true);
  pthread_mutex_lock(&e->ctl);
  pthread_cond_broadcast(&e->cond);
  pthread_mutex_unlock(&e->ctl);
  uint64_t one = 1;
  for (uint32_t i = 0; i < e->nthreads; i++) {
    if (e->workers[i].wake >= 0 && write(e->workers[i].wake, &one, sizeof one) < 0) { /* full: already woken */
    }
  }
}

static void engine_free(engine_t* e) {
  if (e == NULL) return;
  engine_stop(e, true);
  for (uint32_t i = 0; i < e->nthreads; i++) {
    worker_t* w = &e->workers[i];
    if (w->started) pthread_join(w->thread, NULL);
  }
  for (uint32_t i = 0; i < e->nthreads; i++) {
    worker_t* w = &e->workers[i];
    if (w->conns != NULL) {
      for (uint32_t j = 0; j < w->nconn; j++) {
        if (w->conns[j].fd >= 0) close(w->conns[j].fd);
        free(w->conns[j].ring);
      }
    }
    free(w->conns);
    free(w->open_conns);
    free(w->rbuf);
    free(w->sbuf);
    if (w->ep >= 0) close(w->ep);
    if (w->wake >= 0) close(w->wake);
    if (w->timer >= 0) close(w->timer);
    pthread_mutex_destroy(&w->lock);
  }
  free(e->workers);
  if (e->cfg.wire != NULL) {
    for (uint32_t i = 0; i < e->cfg.nmsg; i++) free(e->cfg.wire[i]);
  }
  free(e->cfg.wire);
  free(e->cfg.wire_len);
  free(e->cfg.payload_len);
  pthread_mutex_destroy(&e->ctl);
  pthread_cond_destroy(&e->cond);
  free(e);
}

static void handle_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  handle_t* h = data;
  engine_free(h->eng);
  free(h);
}

static bool get_num(napi_env env, napi_value obj, const char* name, double* out) {
  napi_value v;
  napi_valuetype t;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok || t != napi_number) return false;
  return napi_get_value_double(env, v, out) == napi_ok && *out == *out;
}

static napi_value throw_range(napi_env env, const char* msg) {
  napi_throw_range_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

/* Reads the address (family 4 or 6 with `address` and `port`, 0 with `path`) into cfg. */
static bool parse_address(napi_env env, napi_value obj, config_t* cfg) {
  double family, port = 0;
  if (!get_num(env, obj, "family", &family)) return false;
  napi_value v;
  char text[128];
  size_t len = 0;
  memset(&cfg->addr, 0, sizeof cfg->addr);
  if (family == 0) {
    struct sockaddr_un* un = (struct sockaddr_un*)&cfg->addr;
    if (napi_get_named_property(env, obj, "path", &v) != napi_ok || napi_get_value_string_utf8(env, v, un->sun_path, sizeof un->sun_path, &len) != napi_ok) return false;
    if (len == 0 || len >= sizeof un->sun_path - 1) return false;
    un->sun_family = AF_UNIX;
    cfg->family = AF_UNIX;
    cfg->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    return true;
  }
  if (!get_num(env, obj, "port", &port) || port < 0 || port > 65535) return false;
  if (napi_get_named_property(env, obj, "address", &v) != napi_ok || napi_get_value_string_utf8(env, v, text, sizeof text, &len) != napi_ok) return false;
  if (family == 4) {
    struct sockaddr_in* in = (struct sockaddr_in*)&cfg->addr;
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, text, &in->sin_addr) != 1) return false;
    cfg->family = AF_INET;
    cfg->addrlen = sizeof *in;
    return true;
  }
  if (family == 6) {
    struct sockaddr_in6* in6 = (struct sockaddr_in6*)&cfg->addr;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    char* pct = strchr(text, '%');
    if (pct != NULL) {
      *pct = '\0';
      in6->sin6_scope_id = if_nametoindex(pct + 1);
    }
    if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1) return false;
    cfg->family = AF_INET6;
    cfg->addrlen = sizeof *in6;
    return true;
  }
  return false;
}

static bool parse_messages(napi_env env, napi_value obj, config_t* cfg) {
  napi_value arr;
  uint32_t n;
  bool is_array;
  if (napi_get_named_property(env, obj, "messages", &arr) != napi_ok || napi_is_array(env, arr, &is_array) != napi_ok || !is_array) return false;
  if (napi_get_array_length(env, arr, &n) != napi_ok || n == 0 || n > 1000000) return false;
  cfg->wire = calloc(n, sizeof *cfg->wire);
  cfg->wire_len = calloc(n, sizeof *cfg->wire_len);
  cfg->payload_len = calloc(n, sizeof *cfg->payload_len);
  if (cfg->wire == NULL || cfg->wire_len == NULL || cfg->payload_len == NULL) return false;
  cfg->nmsg = n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value b;
    void* data;
    size_t len;
    bool is_buffer;
    if (napi_get_element(env, arr, i, &b) != napi_ok || napi_is_buffer(env, b, &is_buffer) != napi_ok || !is_buffer) return false;
    if (napi_get_buffer_info(env, b, &data, &len) != napi_ok || len == 0 || len > 0x7fffff00) return false;
    size_t head = cfg->protocol == P_FRAMED ? 4 : 0;
    cfg->wire[i] = malloc(len + head);
    if (cfg->wire[i] == NULL) return false;
    if (head) {
      uint32_t be = htonl((uint32_t)len);
      memcpy(cfg->wire[i], &be, 4);
    }
    memcpy(cfg->wire[i] + head, data, len);
    cfg->wire_len[i] = (uint32_t)(len + head);
    cfg->payload_len[i] = (uint32_t)len;
    if (cfg->wire_len[i] > cfg->max_len) cfg->max_len = cfg->wire_len[i];
  }
  return true;
}

/*
 * loadStart({ protocol, family, address, port, path, messages, threads: [{ connections,
 * requests (-1: none), rate }], connectRate, connectConcurrency, timeoutMs, drainMs, durationMs
 * (-1: none), maxMessage, open }) -> handle. Every count is per thread except the connect
 * concurrency (per thread too: the caller divides).
 */
static napi_value js_load_start(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_range(env, "loadStart(config)");
  napi_value cfgv = argv[0];
  engine_t* e = calloc(1, sizeof *e);
  if (e == NULL) return throw_range(env, "loadStart: out of memory");
  pthread_mutex_init(&e->ctl, NULL);
  pthread_cond_init(&e->cond, NULL);
  config_t* cfg = &e->cfg;
  double protocol, rate, conc, timeout, drain, duration, max_message, open_d;
  napi_value threads;
  uint32_t nthreads = 0;
  bool is_array = false;
  const char* bad = NULL;
  if (!get_num(env, cfgv, "protocol", &protocol) || protocol < 0 || protocol > 2) bad = "loadStart: protocol";
  else {
    cfg->protocol = (int)protocol;
    if (!parse_address(env, cfgv, cfg)) bad = "loadStart: address";
    else if (!parse_messages(env, cfgv, cfg)) bad = "loadStart: messages";
    else if (!get_num(env, cfgv, "connectRate", &rate) || !(rate > 0) || !get_num(env, cfgv, "connectConcurrency", &conc) || !(conc >= 1)) bad = "loadStart: connect rate";
    else if (!get_num(env, cfgv, "timeoutMs", &timeout) || !(timeout > 0) || !get_num(env, cfgv, "drainMs", &drain) || !(drain >= 0)) bad = "loadStart: timeout";
    else if (!get_num(env, cfgv, "durationMs", &duration) || !get_num(env, cfgv, "maxMessage", &max_message) || !get_num(env, cfgv, "open", &open_d)) bad = "loadStart: duration";
    else if (napi_get_named_property(env, cfgv, "threads", &threads) != napi_ok || napi_is_array(env, threads, &is_array) != napi_ok || !is_array ||
             napi_get_array_length(env, threads, &nthreads) != napi_ok || nthreads == 0 || nthreads > 1024)
      bad = "loadStart: threads";
  }
  if (bad != NULL) {
    engine_free(e);
    return throw_range(env, bad);
  }
  cfg->connect_rate = rate;
  cfg->connect_concurrency = conc > 1e6 ? 1000000 : (uint32_t)conc;
  cfg->timeout_ms = timeout;
  cfg->drain_ms = drain;
  cfg->duration_ms = duration;
  cfg->max_message = max_message < 0 ? 0 : (uint64_t)max_message;
  cfg->open = open_d != 0;
  e->workers = calloc(nthreads, sizeof *e->workers);
  if (e->workers == NULL) {
    engine_free(e);
    return throw_range(env, "loadStart: out of memory");
  }
  e->nthreads = nthreads;
  for (uint32_t i = 0; i < nthreads; i++) {
    worker_t* w = &e->workers[i];
    w->ep = w->wake = w->timer = -1;
    pthread_mutex_init(&w->lock, NULL);
  }
  for (uint32_t i = 0; i < nthreads && bad == NULL; i++) {
    worker_t* w = &e->workers[i];
    napi_value t;
    double conns, requests, wrate;
    w->eng = e;
    w->id = i;
    if (napi_get_element(env, threads, i, &t) != napi_ok || !get_num(env, t, "connections", &conns) || !(conns >= 1 && conns <= 1000000) ||
        !get_num(env, t, "requests", &requests) || !get_num(env, t, "rate", &wrate) || (cfg->open && !(wrate > 0))) {
      bad = "loadStart: a thread's share";
      break;
    }
    w->nconn = (uint32_t)conns;
    w->requests_budget = requests;
    w->rate = wrate;
    w->conns = calloc(w->nconn, sizeof *w->conns);
    w->open_conns = calloc(w->nconn, sizeof *w->open_conns);
    w->rbuf = malloc(RBUF);
    w->sbuf = malloc(cfg->max_len);
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (w->conns == NULL || w->open_conns == NULL || w->rbuf == NULL || w->sbuf == NULL || w->ep < 0 || w->wake < 0 || w->timer < 0) {
      bad = "loadStart: out of memory or descriptors";
      break;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = w};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev) != 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->timer, &tev) != 0) {
      bad = "loadStart: epoll";
      break;
    }
    for (uint32_t j = 0; j < w->nconn && bad == NULL; j++) {
      conn_t* c = &w->conns[j];
      c->fd = -1;
      if (cfg->protocol == P_UDP) {
        c->cap = cfg->open ? 64 : 2;
        c->ring = calloc(c->cap, sizeof *c->ring);
        if (c->ring == NULL) bad = "loadStart: out of memory";
      }
    }
    w->local.lo = w->batch.lo = H_LEN;
    w->local.min = w->batch.min = UINT64_MAX;
    w->st.first_error = -1;
    w->pub = w->st;
  }
  if (bad != NULL) {
    engine_free(e);
    return throw_range(env, bad);
  }
  for (uint32_t i = 0; i < nthreads; i++) {
    worker_t* w = &e->workers[i];
    if (pthread_create(&w->thread, NULL, thread_main, w) != 0) {
      engine_free(e);
      napi_throw_error(env, "ERR_NATIVE", "loadStart: could not start a thread");
      return NULL;
    }
    w->started = true;
  }
  handle_t* h = calloc(1, sizeof *h);
  napi_value out;
  if (h == NULL) {
    engine_free(e);
    return throw_range(env, "loadStart: out of memory");
  }
  h->eng = e;
  h->poll.lo = H_LEN;
  h->poll.min = UINT64_MAX;
  if (napi_create_external(env, h, handle_finalize, NULL, &out) != napi_ok) {
    engine_free(e);
    free(h);
    napi_throw_error(env, "ERR_NATIVE", "loadStart: could not make a handle");
    return NULL;
  }
  return out;
}

static handle_t* get_handle(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  void* data;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "a load engine handle");
    return NULL;
  }
  handle_t* h = data;
  if (h->eng == NULL) {
    napi_throw_error(env, "ERR_INVALID_ARG", "the load engine was freed");
    return NULL;
  }
  return h;
}

static bool set_num(napi_env env, napi_value obj, const char* name, double v) {
  napi_value x;
  return napi_create_double(env, v, &x) == napi_ok && napi_set_named_property(env, obj, name, x) == napi_ok;
}

/*
 * loadPoll(handle) -> { minPhase, maxPhase, the summed counters (times: the largest), errors:
 * [id, count, ...] (cumulative), threads: [{ opened, firstError }], histogram: Float64Array
 * [value, count, ...] of the latencies since the last poll, histMin, histMax, histCount }.
 */
static napi_value js_load_poll(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t* h = get_handle(env, info, 1, argv);
  if (h == NULL) return NULL;
  engine_t* e = h->eng;
  stats_t sum;
  memset(&sum, 0, sizeof sum);
  double min_phase = 9, max_phase = 0;
  napi_value out, threads, errors, hist;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_array_with_length(env, e->nthreads, &threads));
  for (uint32_t i = 0; i < e->nthreads; i++) {
    worker_t* w = &e->workers[i];
    stats_t s;
    pthread_mutex_lock(&w->lock);
    s = w->pub;
    hist_merge(&h->poll, &w->batch);
    hist_clear(&w->batch);
    pthread_mutex_unlock(&w->lock);
    double* a = &sum.opened;
    const double* b = &s.opened;
    for (size_t k = 0; k < sizeof sum / sizeof(double); k++) a[k] += b[k];
    if (s.phase < min_phase) min_phase = s.phase;
    if (s.phase > max_phase) max_phase = s.phase;
    napi_value t;
    CHECK(napi_create_object(env, &t));
    if (!set_num(env, t, "opened", s.opened) || !set_num(env, t, "firstError", s.first_error) || !set_num(env, t, "connectMs", s.connect_ms) ||
        !set_num(env, t, "seconds", s.seconds) || !set_num(env, t, "interrupted", s.interrupted)) {
      napi_throw_error(env, "ERR_NATIVE", "loadPoll");
      return NULL;
    }
    CHECK(napi_set_element(env, threads, i, t));
  }
  const char* names[] = {"opened", "openFailed", "connectionErrors", "scheduled", "sent", "completed", "failed", "failTimeout", "failConnection", "failMismatch",
                         "failUnanswered", "unsentDown", "unsentQueued", "inFlightAtStop", "bytesSent", "bytesReceived", "stray", "alive"};
  const double* v = &sum.opened;
  for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
    if (!set_num(env, out, names[k], v[k])) {
      napi_throw_error(env, "ERR_NATIVE", "loadPoll");
      return NULL;
    }
  }
  uint32_t nerr = 0;
  for (int k = 0; k < E_COUNT; k++) nerr += sum.errors[k] != 0;
  CHECK(napi_create_array_with_length(env, nerr * 2, &errors));
  uint32_t at = 0;
  for (int k = 0; k < E_COUNT; k++) {
    if (sum.errors[k] == 0) continue;
    napi_value x;
    CHECK(napi_create_double(env, k, &x));
    CHECK(napi_set_element(env, errors, at++, x));
    CHECK(napi_create_double(env, sum.errors[k], &x));
    CHECK(napi_set_element(env, errors, at++, x));
  }
  uint32_t nb = 0;
  hist_t* p = &h->poll;
  if (p->total > 0)
    for (uint32_t i = p->lo; i <= p->hi; i++) nb += p->counts[i] != 0;
  napi_value ab;
  void* data = NULL;
  CHECK(napi_create_arraybuffer(env, (size_t)nb * 2 * sizeof(double), &data, &ab));
  double* d = data;
  uint32_t j = 0;
  if (p->total > 0)
    for (uint32_t i = p->lo; i <= p->hi; i++) {
      if (p->counts[i] == 0) continue;
      d[j++] = (double)hist_value(i);
      d[j++] = p->counts[i];
    }
  CHECK(napi_create_typedarray(env, napi_float64_array, (size_t)nb * 2, ab, 0, &hist));
  if (!set_num(env, out, "minPhase", min_phase) || !set_num(env, out, "maxPhase", max_phase) || !set_num(env, out, "histMin", p->total ? (double)p->min : 0) ||
      !set_num(env, out, "histMax", (double)p->max) || !set_num(env, out, "histCount", (double)p->total)) {
    napi_throw_error(env, "ERR_NATIVE", "loadPoll");
    return NULL;
  }
  hist_clear(p);
  CHECK(napi_set_named_property(env, out, "errors", errors));
  CHECK(napi_set_named_property(env, out, "threads", threads));
  CHECK(napi_set_named_property(env, out, "histogram", hist));
  return out;
}

static napi_value js_load_go(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t* h = get_handle(env, info, 1, argv);
  if (h == NULL) return NULL;
  pthread_mutex_lock(&h->eng->ctl);
  h->eng->go = true;
  pthread_cond_broadcast(&h->eng->cond);
  pthread_mutex_unlock(&h->eng->ctl);
  return NULL;
}

static napi_value js_load_stop(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  handle_t* h = get_handle(env, info, 2, argv);
  if (h == NULL) return NULL;
  bool interrupt = true;
  napi_get_value_bool(env, argv[1], &interrupt);
  engine_stop(h->eng, interrupt);
  return NULL;
}

static napi_value js_load_free(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle_t* h = get_handle(env, info, 1, argv);
  if (h == NULL) return NULL;
  engine_free(h->eng);
  h->eng = NULL;
  return NULL;
}

napi_value skn_register_load_engine(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"loadStart", NULL, js_load_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"loadPoll", NULL, js_load_poll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"loadGo", NULL, js_load_go, NULL, NULL, NULL, napi_enumerable, NULL},
      {"loadStop", NULL, js_load_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"loadFree", NULL, js_load_free, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not define the load engine");
    return NULL;
  }
  return exports;
}
