/*
 * socketkit's native echo engine (Linux): the data plane of `socketkit echo-server --engine
 * native`. TypeScript keeps everything else (options, listening, accepting and admitting
 * connections, logging, statistics output, signals, graceful stop); this file only moves bytes.
 *
 * Design
 * - N engine threads, each with its own epoll set (level-triggered), its own connections and a
 *   read buffer of its own (ECHO_CHUNK bytes) that every connection of the thread reads into.
 *   A connection holds a heap buffer only while it has bytes it could not send yet or (framed)
 *   a partial message: an idle connection costs one small struct here.
 * - Handoff: JS accepts and admits a connection, then calls add(fd, id). The engine makes a
 *   private duplicate of the descriptor (F_DUPFD_CLOEXEC, as the sendfile helper does), queues it
 *   for a thread (round-robin) and wakes the thread through its eventfd; JS then closes its own
 *   descriptor. From then on only the engine thread uses the duplicate, and it closes it exactly
 *   once (after removing it from its epoll set), never touching it afterwards.
 * - Byte echo: read, send straight back. What the socket does not take is kept and the
 *   connection stops being read (EPOLLIN off, EPOLLOUT on) until it is sent: a client that
 *   sends and never reads costs at most one read's worth of memory (the kernel's buffers aside).
 * - Framed echo (4-byte big-endian length, then the payload): each header is checked against
 *   max-message as soon as its 4 bytes are in (ERR_FRAME_TOO_LARGE), only whole messages go back
 *   (a partial one waits, so the stream ending inside one is ERR_FRAME_TRUNCATED and its bytes
 *   never go back), and the bytes held count against one memory budget shared by every
 *   connection of the engine (ERR_MEMORY_BUDGET), as in src/message/echo.ts.
 * - A peer's half-close: everything it sent goes back, then our side is shut (FIN) and closed.
 * - Idle timeout: each thread sweeps its connections every timeout/4 (10 ms to 5 s).
 * - Reporting: connection ends (id, bytes in and out, milliseconds, reason) are collected per
 *   loop pass and handed to JS in one threadsafe-function call per pass with ends; counters
 *   (open, round trips, bytes, idle closes, budget held) are atomics the JS thread reads when it
 *   prints statistics. Nothing crosses into JS per message.
 *
 * JS API
 *   echoEngineStart(threads, framed, maxMessage, memoryBudget, idleMs, onEnds) -> handle
 *     onEnds(records: Float64Array, final: boolean): records of 6 numbers per connection end:
 *     id, bytesIn, bytesOut, ms, reason, idleMs. reason: 0 clean end, > 0 an errno, < 0 one of
 *     the SKE_* codes below. `final` is true on each thread's last call (after stop).
 *   echoEngineAdd(handle, fd, id) -> 0 or -errno (the engine owns a duplicate of fd)
 *   echoEngineStats(handle) -> Float64Array [open, roundTrips, bytesIn, bytesOut, idleClosed, budgetUsed]
 *   echoEngineStop(handle): closes all, waits for the threads; idempotent
 *   udpEchoStart, udpEchoStats, udpEchoStop: the UDP echo, further down
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include "end_records.h"
#include "modules.h"

#define ECHO_CHUNK (64 * 1024)
#define MAX_EVENTS 256
#define MAX_THREADS 256
#define REC_FIELDS 6

enum { SKE_FRAME_TOO_LARGE = -1, SKE_FRAME_TRUNCATED = -2, SKE_MEMORY_BUDGET = -3, SKE_IDLE = -4, SKE_STOPPED = -5 };

enum { C_PAUSED = 1, C_EOF = 2 };

typedef struct conn {
  struct conn *prev, *next;
  int fd;
  uint32_t flags;
  double id;
  uint64_t bytes_in, bytes_out;
  int64_t started_ms, active_ms;
  uint8_t *buf;  /* NULL when nothing is held */
  uint32_t cap;  /* bytes allocated */
  uint32_t len;  /* bytes held */
  uint32_t off;  /* of those, already sent */
  uint32_t ready; /* of those, bytes of whole messages (byte echo: all of them) */
  uint64_t held; /* framed: bytes counted in the budget */
} conn_t;

typedef struct cmd {
  struct cmd *next;
  int fd;
  double id;
} cmd_t;

struct engine;

typedef struct worker {
  struct engine *eng;
  pthread_t thread;
  bool started;
  int ep, wake;
  pthread_mutex_t mu;
  cmd_t *queue;        /* new connections, under mu */
  bool stop;           /* under mu */
  conn_t *conns;       /* owned by the thread */
  uint8_t *chunk;
  skn_end_records ends; /* records of this pass */
  /* Counters: written by the thread only, read by JS. */
  _Atomic uint64_t c_open, c_round_trips, c_bytes_in, c_bytes_out, c_idle_closed;
  uint64_t open, round_trips, bytes_in, bytes_out, idle_closed;
} worker_t;

typedef struct engine {
  int nthreads;
  bool framed;
  uint32_t max_message;
  int64_t budget_limit;
  _Atomic int64_t budget_used;
  int64_t idle_ms;
  _Atomic unsigned next;
  napi_threadsafe_function tsfn;
  bool stopped;
  napi_env env;
  worker_t *workers;
} engine_t;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Connection ends, reported in batches. */

static void push_end(worker_t *w, conn_t *c, int reason, int64_t idle_ms, int64_t now) {
  double *r = skn_end_record(&w->ends, REC_FIELDS);
  if (r == NULL) return; /* out of memory: this end goes unreported; the counters still hold */
  r[0] = c->id;
  r[1] = (double)c->bytes_in;
  r[2] = (double)c->bytes_out;
  r[3] = (double)(now - c->started_ms);
  r[4] = reason;
  r[5] = (double)idle_ms;
}

static void flush_ends(worker_t *w, bool final) {
  skn_end_flush(&w->ends, w->eng->tsfn, final);
}

static void publish(worker_t *w) {
  atomic_store_explicit(&w->c_open, w->open, memory_order_relaxed);
  atomic_store_explicit(&w->c_round_trips, w->round_trips, memory_order_relaxed);
  atomic_store_explicit(&w->c_bytes_in, w->bytes_in, memory_order_relaxed);
  atomic_store_explicit(&w->c_bytes_out, w->bytes_out, memory_order_relaxed);
  atomic_store_explicit(&w->c_idle_closed, w->idle_closed, memory_order_relaxed);
}

/* ---- The memory budget (framed echo), shared by every thread. */

static bool budget_reserve(engine_t *e, int64_t n) {
  int64_t used = atomic_load_explicit(&e->budget_used, memory_order_relaxed);
  do {
    if (used + n > e->budget_limit) return false;
  } while (!atomic_compare_exchange_weak_explicit(&e->budget_used, &used, used + n, memory_order_relaxed, memory_order_relaxed));
  return true;
}

static void budget_adjust(engine_t *e, int64_t n) {
  if (n != 0) atomic_fetch_add_explicit(&e->budget_used, n, memory_order_relaxed);
}

/* ---- Connections. */

static void conn_close(worker_t *w, conn_t *c, int reason, int64_t idle_ms, int64_t now) {
  epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  if (c->held) budget_adjust(w->eng, -(int64_t)c->held);
  push_end(w, c, reason, idle_ms, now);
  if (c->prev) c->prev->next = c->next;
  else w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  w->open--;
  free(c->buf);
  free(c);
}

static int set_events(worker_t *w, conn_t *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  return epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Makes room for `need` bytes held; false when out of memory. */
static bool ensure(conn_t *c, uint32_t need) {
  if (need <= c->cap) return true;
  uint32_t cap = c->cap ? c->cap : 4096;
  while (cap < need) cap = cap > UINT32_MAX / 2 ? need : cap * 2;
  uint8_t *p = realloc(c->buf, cap);
  if (p == NULL) return false;
  c->buf = p;
  c->cap = cap;
  return true;
}

/* Drops the sent prefix of the buffer; frees it when nothing is held. */
static void compact(conn_t *c) {
  if (c->off == 0) return;
  if (c->off == c->len) {
    free(c->buf);
    c->buf = NULL;
    c->cap = c->len = c->off = c->ready = 0;
    return;
  }
  memmove(c->buf, c->buf + c->off, c->len - c->off);
  c->len -= c->off;
  c->ready -= c->off;
  c->off = 0;
}

/* Sends `n` bytes from `p`; returns bytes sent (maybe fewer: the socket is full) or -errno. */
static ssize_t send_some(worker_t *w, conn_t *c, const uint8_t *p, size_t n, int64_t now) {
  size_t done = 0;
  while (done < n) {
    ssize_t k = send(c->fd, p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (k > 0) {
      done += (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return k < 0 ? -errno : -EPIPE;
  }
  if (done > 0) {
    c->bytes_out += done;
    w->bytes_out += done;
    c->active_ms = now;
  }
  return (ssize_t)done;
}

/*
 * Whole messages at the start of p[0..n): their length in bytes, and the messages counted in
 * *msgs. *bad is set when a header there is over max (the bytes before it are whole messages).
 */
static size_t whole_frames(const engine_t *e, const uint8_t *p, size_t n, uint64_t *msgs, bool *bad) {
  size_t pos = 0;
  while (n - pos >= 4) {
    uint32_t flen = ((uint32_t)p[pos] << 24) | ((uint32_t)p[pos + 1] << 16) | ((uint32_t)p[pos + 2] << 8) | p[pos + 3];
    if (flen > e->max_message) {
      *bad = true;
      break;
    }
    if (n - pos - 4 < flen) break;
    pos += 4 + (size_t)flen;
    (*msgs)++;
  }
  return pos;
}

/* Brings the budget to what the connection holds now (framed). */
static void account(engine_t *e, conn_t *c) {
  uint64_t now_held = c->len - c->off;
  budget_adjust(e, (int64_t)now_held - (int64_t)c->held);
  c->held = now_held;
}

/* After the peer's FIN, once everything has gone back: shut our side and close. */
static bool finish_if_done(worker_t *w, conn_t *c, int64_t now) {
  if (!(c->flags & C_EOF) || c->off < c->ready) return false;
  if (w->eng->framed && c->len > c->ready) {
    conn_close(w, c, SKE_FRAME_TRUNCATED, -1, now);
    return true;
  }
  shutdown(c->fd, SHUT_WR);
  conn_close(w, c, 0, -1, now);
  return true;
}

/* Sends what is held; resumes reading once it is all gone. */
static void on_writable(worker_t *w, conn_t *c, int64_t now) {
  engine_t *e = w->eng;
  if (c->off < c->ready) {
    ssize_t k = send_some(w, c, c->buf + c->off, c->ready - c->off, now);
    if (k < 0) {
      conn_close(w, c, (int)-k, -1, now);
      return;
    }
    c->off += (uint32_t)k;
    if (c->off < c->ready) return; /* still full */
  }
  compact(c);
  if (e->framed) account(e, c);
  if (finish_if_done(w, c, now)) return;
  if (c->flags & C_PAUSED) {
    c->flags &= ~(uint32_t)C_PAUSED;
    if (set_events(w, c, EPOLLIN) < 0) conn_close(w, c, errno, -1, now);
  }
}

/* Stops reading until what is held has gone. */
static void pause_reading(worker_t *w, conn_t *c, int64_t now) {
  if (c->flags & C_PAUSED) return;
  c->flags |= C_PAUSED;
  if (set_events(w, c, EPOLLOUT) < 0) conn_close(w, c, errno, -1, now);
}

static void on_readable(worker_t *w, conn_t *c, int64_t now) {
  engine_t *e = w->eng;
  ssize_t n;
  do n = recv(c->fd, w->chunk, ECHO_CHUNK, MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    conn_close(w, c, errno, -1, now);
    return;
  }
  if (n == 0) {
    c->flags |= C_EOF;
    if (finish_if_done(w, c, now)) return;
    /* Replies still held: wait for them to go (no more reading: EPOLLIN would stay ready). */
    pause_reading(w, c, now);
    return;
  }
  c->bytes_in += (uint64_t)n;
  w->bytes_in += (uint64_t)n;
  c->active_ms = now;

  if (!e->framed) {
    w->round_trips++;
    if (c->len == 0) {
      ssize_t k = send_some(w, c, w->chunk, (size_t)n, now);
      if (k < 0) {
        conn_close(w, c, (int)-k, -1, now);
        return;
      }
      if (k == n) return;
      if (!ensure(c, (uint32_t)(n - k))) {
        conn_close(w, c, ENOMEM, -1, now);
        return;
      }
      memcpy(c->buf, w->chunk + k, (size_t)(n - k));
      c->len = c->ready = (uint32_t)(n - k);
      c->off = 0;
    } else {
      /* Not reachable while paused; kept for safety: hold the bytes behind the others. */
      if (!ensure(c, c->len + (uint32_t)n)) {
        conn_close(w, c, ENOMEM, -1, now);
        return;
      }
      memcpy(c->buf + c->len, w->chunk, (size_t)n);
      c->len += (uint32_t)n;
      c->ready = c->len;
    }
    pause_reading(w, c, now);
    return;
  }

  /* Framed. The chunk is counted before anything is done with it, as the TS engine does. */
  if (!budget_reserve(e, n)) {
    conn_close(w, c, SKE_MEMORY_BUDGET, -1, now);
    return;
  }
  c->held += (uint64_t)n;
  uint64_t msgs = 0;
  bool bad = false;
  if (c->len == 0) {
    /* Nothing held: whole messages go straight from the read buffer. */
    size_t whole = whole_frames(e, w->chunk, (size_t)n, &msgs, &bad);
    w->round_trips += msgs;
    size_t sent = 0;
    if (whole > 0) {
      ssize_t k = send_some(w, c, w->chunk, whole, now);
      if (k < 0) {
        conn_close(w, c, (int)-k, -1, now);
        return;
      }
      sent = (size_t)k;
    }
    if (bad) {
      conn_close(w, c, SKE_FRAME_TOO_LARGE, -1, now);
      return;
    }
    size_t keep = (size_t)n - sent;
    if (keep > 0) {
      if (!ensure(c, (uint32_t)keep)) {
        conn_close(w, c, ENOMEM, -1, now);
        return;
      }
      memcpy(c->buf, w->chunk + sent, keep);
    }
    c->len = (uint32_t)keep;
    c->ready = (uint32_t)(whole - sent);
    c->off = 0;
  } else {
    if (!ensure(c, c->len + (uint32_t)n)) {
      conn_close(w, c, ENOMEM, -1, now);
      return;
    }
    memcpy(c->buf + c->len, w->chunk, (size_t)n);
    c->len += (uint32_t)n;
    size_t whole = whole_frames(e, c->buf + c->ready, c->len - c->ready, &msgs, &bad);
    w->round_trips += msgs;
    c->ready += (uint32_t)whole;
    if (c->off < c->ready && !(c->flags & C_PAUSED)) {
      ssize_t k = send_some(w, c, c->buf + c->off, c->ready - c->off, now);
      if (k < 0) {
        conn_close(w, c, (int)-k, -1, now);
        return;
      }
      c->off += (uint32_t)k;
    }
    if (bad) {
      conn_close(w, c, SKE_FRAME_TOO_LARGE, -1, now);
      return;
    }
    compact(c);
  }
  account(e, c);
  /* The client is not taking its replies: stop reading until it does. */
  if (c->off < c->ready) pause_reading(w, c, now);
}

static void take_new(worker_t *w, cmd_t *list, int64_t now) {
  while (list) {
    cmd_t *next = list->next;
    conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(list->fd);
      conn_t tmp = {.id = list->id, .started_ms = now};
      push_end(w, &tmp, ENOMEM, -1, now);
    } else {
      c->fd = list->fd;
      c->id = list->id;
      c->started_ms = c->active_ms = now;
      c->next = w->conns;
      if (w->conns) w->conns->prev = c;
      w->conns = c;
      w->open++;
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
      if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) conn_close(w, c, errno, -1, now);
    }
    free(list);
    list = next;
  }
}

static void close_all(worker_t *w, int64_t now) {
  while (w->conns) conn_close(w, w->conns, SKE_STOPPED, -1, now);
}

static void sweep(worker_t *w, int64_t now) {
  int64_t limit = w->eng->idle_ms;
  conn_t *c = w->conns;
  while (c) {
    conn_t *next = c->next;
    if (now - c->active_ms >= limit) {
      w->idle_closed++;
      conn_close(w, c, SKE_IDLE, now - c->active_ms, now);
    }
    c = next;
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  engine_t *e = w->eng;
  struct epoll_event evs[MAX_EVENTS];
  int64_t sweep_every = 0, next_sweep = 0;
  if (e->idle_ms > 0) {
    sweep_every = e->idle_ms / 4;
    if (sweep_every < 10) sweep_every = 10;
    if (sweep_every > 5000) sweep_every = 5000;
    next_sweep = now_ms() + sweep_every;
  }
  bool stop = false;
  while (!stop) {
    int timeout = -1;
    if (sweep_every > 0) {
      int64_t left = next_sweep - now_ms();
      timeout = left < 0 ? 0 : (int)left;
    }
    int n = epoll_wait(w->ep, evs, MAX_EVENTS, timeout);
    if (n < 0 && errno != EINTR) break;
    int64_t now = now_ms();
    bool woke = false;
    /* Each connection is in evs at most once; none is closed here except by its own event, so
     * no entry points at a freed connection. Commands (which may close them all) come after. */
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c == NULL) {
        woke = true;
        continue;
      }
      if (c->flags & C_PAUSED) {
        on_writable(w, c, now); /* EPOLLOUT, ERR or HUP: send reports the errors */
      } else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        on_readable(w, c, now);
      }
    }
    if (woke) {
      uint64_t v;
      if (read(w->wake, &v, sizeof v) < 0) { /* EAGAIN: nothing was counted since the last read */ }
      pthread_mutex_lock(&w->mu);
      cmd_t *list = w->queue;
      w->queue = NULL;
      stop = w->stop;
      pthread_mutex_unlock(&w->mu);
      take_new(w, list, now);
    }
    if (sweep_every > 0 && now >= next_sweep) {
      sweep(w, now);
      next_sweep = now + sweep_every;
    }
    publish(w);
    flush_ends(w, false);
  }
  close_all(w, now_ms());
  publish(w);
  flush_ends(w, true);
  return NULL;
}

/* ---- JS side. */

static void engine_stop(engine_t *e) {
  if (e->stopped) return;
  e->stopped = true;
  for (int i = 0; i < e->nthreads; i++) {
    worker_t *w = &e->workers[i];
    if (!w->started) continue;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_mutex_unlock(&w->mu);
    uint64_t one = 1;
    if (write(w->wake, &one, sizeof one) < 0) { /* the counter is full: the thread is awake anyway */ }
  }
  for (int i = 0; i < e->nthreads; i++) {
    worker_t *w = &e->workers[i];
    if (w->started) pthread_join(w->thread, NULL);
    w->started = false;
    /* Connections queued after the thread's last look at the queue: never served. */
    for (cmd_t *q = w->queue; q;) {
      cmd_t *next = q->next;
      close(q->fd);
      free(q);
      q = next;
    }
    w->queue = NULL;
    if (w->ep >= 0) close(w->ep);
    if (w->wake >= 0) close(w->wake);
    w->ep = w->wake = -1;
    free(w->chunk);
    skn_end_free(&w->ends);
    w->chunk = NULL;
    pthread_mutex_destroy(&w->mu);
  }
  napi_release_threadsafe_function(e->tsfn, napi_tsfn_release);
}

static void engine_free(engine_t *e) {
  free(e->workers);
  free(e);
}

static void cleanup_hook(void *arg) {
  engine_t *e = arg;
  engine_stop(e);
}

static void finalize_handle(napi_env env, void *data, void *hint) {
  (void)hint;
  engine_t *e = data;
  engine_stop(e);
  napi_remove_env_cleanup_hook(env, cleanup_hook, e);
  engine_free(e);
}

#define THROW(code, msg)                         \
  do {                                           \
    napi_throw_error(env, code, "socketkit native: " msg); \
    return NULL;                                 \
  } while (0)

static engine_t *get_engine(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static napi_value js_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6) THROW("ERR_INVALID_ARG", "echoEngineStart(threads, framed, maxMessage, budget, idleMs, onEnds)");
  int32_t threads;
  bool framed;
  double max_message, budget, idle;
  napi_valuetype t;
  if (napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1 || threads > MAX_THREADS || napi_get_value_bool(env, argv[1], &framed) != napi_ok ||
      napi_get_value_double(env, argv[2], &max_message) != napi_ok || !(max_message >= 0 && max_message <= 4294967295.0) ||
      napi_get_value_double(env, argv[3], &budget) != napi_ok || !(budget >= 1 && budget <= 9007199254740991.0) || napi_get_value_double(env, argv[4], &idle) != napi_ok ||
      !(idle >= 0 && idle <= 9007199254740991.0) || napi_typeof(env, argv[5], &t) != napi_ok || t != napi_function) {
    THROW("ERR_INVALID_ARG", "echoEngineStart: bad arguments");
  }
  /* The buffer offsets are 32-bit: a held message and one read must fit. */
  if (max_message > (double)(UINT32_MAX - 2 * ECHO_CHUNK - 8)) max_message = (double)(UINT32_MAX - 2 * ECHO_CHUNK - 8);
  engine_t *e = calloc(1, sizeof *e);
  if (e == NULL) THROW("ERR_NATIVE", "out of memory");
  e->workers = calloc((size_t)threads, sizeof *e->workers);
  if (e->workers == NULL) {
    free(e);
    THROW("ERR_NATIVE", "out of memory");
  }
  e->nthreads = threads;
  e->framed = framed;
  e->max_message = (uint32_t)max_message;
  e->budget_limit = (int64_t)budget;
  e->idle_ms = (int64_t)idle;
  e->env = env;
  napi_value name;
  if (napi_create_string_utf8(env, "socketkit.echoEngine", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, argv[5], NULL, name, 0, 1, NULL, NULL, NULL, skn_end_call_js, &e->tsfn) != napi_ok) {
    engine_free(e);
    THROW("ERR_NATIVE", "could not create the engine's callback");
  }
  for (int i = 0; i < threads; i++) {
    worker_t *w = &e->workers[i];
    w->eng = e;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->chunk = malloc(ECHO_CHUNK);
    pthread_mutex_init(&w->mu, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (w->ep < 0 || w->wake < 0 || w->chunk == NULL || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev) < 0 || pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      for (int j = i + 1; j < threads; j++) {
        e->workers[j].ep = e->workers[j].wake = -1;
        pthread_mutex_init(&e->workers[j].mu, NULL);
      }
      engine_stop(e);
      engine_free(e);
      THROW("ERR_NATIVE", "could not start the engine's threads");
    }
    w->started = true;
  }
  napi_value handle;
  if (napi_create_external(env, e, finalize_handle, NULL, &handle) != napi_ok) {
    engine_stop(e);
    engine_free(e);
    THROW("ERR_NATIVE", "could not create the engine handle");
  }
  napi_add_env_cleanup_hook(env, cleanup_hook, e);
  return handle;
}

static napi_value js_add(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], result;
  int32_t fd;
  double id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) THROW("ERR_INVALID_ARG", "echoEngineAdd(handle, fd, id)");
  engine_t *e = get_engine(env, argv[0]);
  if (e == NULL || napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0 || napi_get_value_double(env, argv[2], &id) != napi_ok) {
    THROW("ERR_INVALID_ARG", "echoEngineAdd: bad arguments");
  }
  int r = 0;
  if (e->stopped) {
    r = -ESHUTDOWN;
  } else {
    int fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    cmd_t *cmd = fd2 < 0 ? NULL : malloc(sizeof *cmd);
    if (fd2 < 0) {
      r = -errno;
    } else if (cmd == NULL) {
      close(fd2);
      r = -ENOMEM;
    } else {
      int fl = fcntl(fd2, F_GETFL);
      if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd2, F_SETFL, fl | O_NONBLOCK);
      worker_t *w = &e->workers[atomic_fetch_add_explicit(&e->next, 1, memory_order_relaxed) % (unsigned)e->nthreads];
      cmd->fd = fd2;
      cmd->id = id;
      pthread_mutex_lock(&w->mu);
      bool was_empty = w->queue == NULL;
      cmd->next = w->queue;
      w->queue = cmd;
      pthread_mutex_unlock(&w->mu);
      uint64_t one = 1;
      if (was_empty && write(w->wake, &one, sizeof one) < 0) { /* counter full: the thread is awake anyway */ }
    }
  }
  if (napi_create_int32(env, r, &result) != napi_ok) return NULL;
  return result;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, arr;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) THROW("ERR_INVALID_ARG", "echoEngineStats(handle)");
  engine_t *e = get_engine(env, argv[0]);
  if (e == NULL) THROW("ERR_INVALID_ARG", "echoEngineStats: not an engine");
  double *p;
  if (napi_create_arraybuffer(env, 6 * sizeof(double), (void **)&p, &ab) != napi_ok || napi_create_typedarray(env, napi_float64_array, 6, ab, 0, &arr) != napi_ok) return NULL;
  uint64_t open = 0, rt = 0, in = 0, out = 0, idle = 0;
  for (int i = 0; i < e->nthreads; i++) {
    worker_t *w = &e->workers[i];
    open += atomic_load_explicit(&w->c_open, memory_order_relaxed);
    rt += atomic_load_explicit(&w->c_round_trips, memory_order_relaxed);
    in += atomic_load_explicit(&w->c_bytes_in, memory_order_relaxed);
    out += atomic_load_explicit(&w->c_bytes_out, memory_order_relaxed);
    idle += atomic_load_explicit(&w->c_idle_closed, memory_order_relaxed);
  }
  p[0] = (double)open;
  p[1] = (double)rt;
  p[2] = (double)in;
  p[3] = (double)out;
  p[4] = (double)idle;
  p[5] = (double)atomic_load_explicit(&e->budget_used, memory_order_relaxed);
  return arr;
}

static napi_value js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) THROW("ERR_INVALID_ARG", "echoEngineStop(handle)");
  engine_t *e = get_engine(env, argv[0]);
  if (e == NULL) THROW("ERR_INVALID_ARG", "echoEngineStop: not an engine");
  engine_stop(e);
  return NULL;
}

/* ---- UDP echo: one thread, recvmmsg/sendmmsg batches.
 *
 * udpEchoStart(family, address, port) -> handle, or a negative errno: the engine binds its own
 *   socket (IPv6 dual stack, as the TS engine's) and echoes every datagram to its source, in
 *   batches of UDP_BATCH: one recvmmsg takes what is queued, one sendmmsg sends the echoes. An
 *   echo the socket cannot take at once (EAGAIN) is dropped and counted, as the TS engine drops
 *   echoes past its send queue limit: a UDP socket cannot be paused.
 * udpEchoStats(handle) -> Float64Array [datagramsIn, datagramsOut, bytesIn, bytesOut, sendErrors, dropped, port]
 * udpEchoStop(handle): stops the thread and closes the duplicate; idempotent.
 */
#define UDP_BATCH 64
#define UDP_MAX 65536

typedef struct udp_engine {
  int fd, ep, wake;
  pthread_t thread;
  bool started, stopped;
  _Atomic bool stop;
  uint8_t *bufs;
  _Atomic uint64_t c[6];
  int port;
  /* Never called: held (ref'd) while the engine runs so that it keeps Node's event loop alive, as a socket would. */
  napi_threadsafe_function keepalive;
  bool has_keepalive;
} udp_engine_t;

static void *udp_main(void *arg) {
  udp_engine_t *u = arg;
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct sockaddr_storage addrs[UDP_BATCH];
  uint64_t din = 0, dout = 0, bin = 0, bout = 0, serr = 0, drop = 0;
  struct epoll_event evs[2];
  while (!atomic_load(&u->stop)) {
    int n = epoll_wait(u->ep, evs, 2, -1);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) continue; /* the wake: the loop condition looks at stop */
      for (int rounds = 0; rounds < 16; rounds++) {
        for (int k = 0; k < UDP_BATCH; k++) {
          iov[k].iov_base = u->bufs + (size_t)k * UDP_MAX;
          iov[k].iov_len = UDP_MAX;
          memset(&msgs[k].msg_hdr, 0, sizeof msgs[k].msg_hdr);
          msgs[k].msg_hdr.msg_name = &addrs[k];
          msgs[k].msg_hdr.msg_namelen = sizeof addrs[k];
          msgs[k].msg_hdr.msg_iov = &iov[k];
          msgs[k].msg_hdr.msg_iovlen = 1;
          msgs[k].msg_len = 0;
        }
        int got = recvmmsg(u->fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) break; /* EAGAIN (drained), EINTR, or an error the next pass sees again */
        for (int k = 0; k < got; k++) {
          din++;
          bin += msgs[k].msg_len;
          iov[k].iov_len = msgs[k].msg_len;
        }
        int sent = 0;
        while (sent < got) {
          int r = sendmmsg(u->fd, msgs + sent, (unsigned)(got - sent), MSG_DONTWAIT);
          if (r > 0) {
            for (int k = sent; k < sent + r; k++) bout += iov[k].iov_len;
            dout += (uint64_t)r;
            sent += r;
          } else if (r < 0 && errno == EINTR) {
            continue;
          } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            drop += (uint64_t)(got - sent);
            break;
          } else {
            serr++; /* this datagram's echo failed (an unreachable address): skip it */
            sent++;
          }
        }
        atomic_store_explicit(&u->c[0], din, memory_order_relaxed);
        atomic_store_explicit(&u->c[1], dout, memory_order_relaxed);
        atomic_store_explicit(&u->c[2], bin, memory_order_relaxed);
        atomic_store_explicit(&u->c[3], bout, memory_order_relaxed);
        atomic_store_explicit(&u->c[4], serr, memory_order_relaxed);
        atomic_store_explicit(&u->c[5], drop, memory_order_relaxed);
        if (got < UDP_BATCH) break;
      }
    }
  }
  return NULL;
}

static void udp_stop(udp_engine_t *u) {
  if (u->stopped) return;
  u->stopped = true;
  atomic_store(&u->stop, true);
  uint64_t one = 1;
  if (u->wake >= 0 && write(u->wake, &one, sizeof one) < 0) { /* counter full: the thread is awake anyway */ }
  if (u->started) pthread_join(u->thread, NULL);
  u->started = false;
  if (u->fd >= 0) close(u->fd);
  if (u->ep >= 0) close(u->ep);
  if (u->wake >= 0) close(u->wake);
  u->fd = u->ep = u->wake = -1;
  free(u->bufs);
  u->bufs = NULL;
  if (u->has_keepalive) napi_release_threadsafe_function(u->keepalive, napi_tsfn_release);
  u->has_keepalive = false;
}

static void udp_never_called(napi_env env, napi_value cb, void *context, void *data) {
  (void)env;
  (void)cb;
  (void)context;
  (void)data;
}

static void udp_cleanup_hook(void *arg) {
  udp_stop(arg);
}

static void udp_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  udp_stop(data);
  napi_remove_env_cleanup_hook(env, udp_cleanup_hook, data);
  free(data);
}

static udp_engine_t *get_udp(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

/* A bound non-blocking UDP socket, or -errno. */
static int udp_bind(int family, const char *address, int port, int *bound_port) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (family == 6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, address, &a->sin6_addr) != 1) return -EINVAL;
    len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, address, &a->sin_addr) != 1) return -EINVAL;
    len = sizeof *a;
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int off = 0;
  if (family == 6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  struct sockaddr_storage got;
  socklen_t glen = sizeof got;
  if (getsockname(fd, (struct sockaddr *)&got, &glen) == 0) {
    *bound_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port : ((struct sockaddr_in *)&got)->sin_port);
  }
  return fd;
}

static napi_value js_udp_start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], handle;
  int32_t family, port;
  char address[64];
  size_t alen;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_int32(env, argv[0], &family) != napi_ok || (family != 4 && family != 6) ||
      napi_get_value_string_utf8(env, argv[1], address, sizeof address, &alen) != napi_ok || napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 0 || port > 65535) {
    THROW("ERR_INVALID_ARG", "udpEchoStart(family, address, port)");
  }
  int bound_port = port;
  int fd = udp_bind(family, address, port, &bound_port);
  if (fd < 0) {
    napi_value r;
    if (napi_create_int32(env, fd, &r) != napi_ok) return NULL;
    return r;
  }
  udp_engine_t *u = calloc(1, sizeof *u);
  if (u == NULL) {
    close(fd);
    THROW("ERR_NATIVE", "out of memory");
  }
  u->fd = fd;
  u->port = bound_port;
  u->ep = epoll_create1(EPOLL_CLOEXEC);
  u->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  u->bufs = malloc((size_t)UDP_BATCH * UDP_MAX);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = u}, wev = {.events = EPOLLIN, .data.ptr = NULL};
  if (u->ep < 0 || u->wake < 0 || u->bufs == NULL || epoll_ctl(u->ep, EPOLL_CTL_ADD, u->fd, &ev) < 0 || epoll_ctl(u->ep, EPOLL_CTL_ADD, u->wake, &wev) < 0 ||
      pthread_create(&u->thread, NULL, udp_main, u) != 0) {
    udp_stop(u);
    free(u);
    THROW("ERR_NATIVE", "could not start the UDP echo engine");
  }
  u->started = true;
  napi_value name;
  if (napi_create_string_utf8(env, "socketkit.udpEcho", NAPI_AUTO_LENGTH, &name) == napi_ok &&
      napi_create_threadsafe_function(env, NULL, NULL, name, 1, 1, NULL, NULL, NULL, udp_never_called, &u->keepalive) == napi_ok) {
    u->has_keepalive = true;
  }
  if (napi_create_external(env, u, udp_finalize, NULL, &handle) != napi_ok) {
    udp_stop(u);
    free(u);
    THROW("ERR_NATIVE", "could not create the engine handle");
  }
  napi_add_env_cleanup_hook(env, udp_cleanup_hook, u);
  return handle;
}

static napi_value js_udp_stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], ab, arr;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) THROW("ERR_INVALID_ARG", "udpEchoStats(handle)");
  udp_engine_t *u = get_udp(env, argv[0]);
  if (u == NULL) THROW("ERR_INVALID_ARG", "udpEchoStats: not an engine");
  double *p;
  if (napi_create_arraybuffer(env, 7 * sizeof(double), (void **)&p, &ab) != napi_ok || napi_create_typedarray(env, napi_float64_array, 7, ab, 0, &arr) != napi_ok) return NULL;
  for (int i = 0; i < 6; i++) p[i] = (double)atomic_load_explicit(&u->c[i], memory_order_relaxed);
  p[6] = u->port;
  return arr;
}

static napi_value js_udp_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) THROW("ERR_INVALID_ARG", "udpEchoStop(handle)");
  udp_engine_t *u = get_udp(env, argv[0]);
  if (u == NULL) THROW("ERR_INVALID_ARG", "udpEchoStop: not an engine");
  udp_stop(u);
  return NULL;
}

napi_value skn_register_echo_engine(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"echoEngineStart", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"echoEngineAdd", NULL, js_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"echoEngineStats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"echoEngineStop", NULL, js_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpEchoStart", NULL, js_udp_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpEchoStats", NULL, js_udp_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpEchoStop", NULL, js_udp_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) THROW("ERR_NATIVE", "could not define the echo engine");
  return exports;
}
