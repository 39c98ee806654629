/*
 * socketkit's native relay engine (Linux): the data plane of `socketkit proxy` for connections
 * with nothing to do in JavaScript (no toxic, no dump, no TLS). TypeScript keeps everything else:
 * listening, admission (allow/deny, --max-conns), connecting to the upstream (and its errors),
 * the idle sweep, statistics, logging and the graceful stop. This file only moves bytes.
 *
 * Design
 * - N engine threads, each with its own epoll set (edge-triggered: each descriptor is registered
 *   once for EPOLLIN|EPOLLOUT|EPOLLRDHUP and never modified; the thread keeps "may read" and
 *   "may write" flags per descriptor and clears them on EAGAIN).
 * - Each direction of a connection (client -> upstream, upstream -> client) has a kernel pipe of
 *   its own: splice(2) moves the bytes socket -> pipe -> socket, so they never enter user space.
 *   A direction reads its source only while its pipe is empty: what it holds is at most one
 *   pipe's worth (64 KiB by default), and a destination that does not read stops the reading of
 *   its source (the kernel's socket buffers aside): backpressure both ways, bounded memory.
 * - Handoff: JS has accepted the client (paused: Node never read from it), connected the
 *   upstream and stopped Node reading it, then calls add(): the engine duplicates both
 *   descriptors (F_DUPFD_CLOEXEC), creates the two pipes (an error there, EMFILE say, is returned
 *   at once and the connection stays in JS), and queues the connection for a thread. Bytes Node
 *   had already read (a server that greets first, a client that spoke before the upstream
 *   answered) come as a prefix per direction that the engine writes before anything else. Node's sockets stay open
 *   (the managed server counts and sweeps them) but idle; only the engine thread uses the
 *   duplicates, and it closes them exactly once, before it reports the end, never afterwards.
 * - Half-close travels through: when a source ends and its pipe is empty, the destination is
 *   shut for writing (FIN), and the other direction keeps flowing. Both shut: a clean end.
 * - A reset or an error on a side (a read or a write that fails, EPOLLERR with SO_ERROR set, an
 *   end of stream that the kernel says was a reset) ends the connection with that side and errno;
 *   JS then resets the other side (its descriptor is the last one open, so the RST goes out).
 * - close(slot, id) from JS (idle sweep, stop): the thread ends the connection ("stopped").
 * - Counters: per connection (a slot that JS allocates), bytes read and written each way, as
 *   atomics that JS reads for statistics and the idle sweep. Ends are collected per loop pass and
 *   handed to JS in one threadsafe-function call per pass with ends. Nothing crosses per chunk.
 *
 * JS API
 *   proxyEngineStart(threads, maxSlots, pipeSize, turnBytes, onEnds) -> handle (pipeSize 0: the
 *     system's default; turnBytes 0: 1 MiB, what a connection moves before the others' turn)
 *     onEnds(records: Float64Array, final: boolean): records of REC_FIELDS numbers per end:
 *     id, slot, reason (0 clean, 1 client side failed, 2 upstream side failed, 3 stopped),
 *     errno, then the slot's counters (fromClient, toUpstream, fromUpstream, toClient).
 *   proxyEngineAdd(handle, clientFd, upstreamFd, id, slot, prefixToUpstream|null, prefixToClient|null)
 *     -> 0 or -errno. The prefixes (bytes Node read before the handoff) are written first; the
 *     counters' "from" figures count only what the engine read, their "to" figures all it wrote.
 *   proxyEngineClose(handle, slot, id): ends that connection, if it is still the one in the slot
 *   proxyEngineCounters(handle, slot) -> Float64Array [fromClient, toUpstream, fromUpstream, toClient]
 *   proxyEngineStop(handle): ends all (reported as stopped), waits for the threads; idempotent
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "end_records.h"
#include "modules.h"

#define PX_MAX_EVENTS 256
#define PX_MAX_THREADS 64
#define PX_MAX_SLOTS (1 << 20)
#define PX_REC_FIELDS 8
/* Bytes one connection may move per turn before the others get theirs (by default). */
#define PX_TURN_BYTES (1 << 20)
/* A read past TCP's urgent mark, where splice stops (see px_past_mark). */
#define PX_SCRATCH (64 * 1024)

enum { PX_CLEAN = 0, PX_CLIENT_FAILED = 1, PX_UPSTREAM_FAILED = 2, PX_STOPPED = 3 };
/* The slot counters, in this order. */
enum { PX_FROM_CLIENT = 0, PX_TO_UPSTREAM = 1, PX_FROM_UPSTREAM = 2, PX_TO_CLIENT = 3 };

typedef struct {
  _Atomic uint64_t v[4];
} px_counters;

typedef struct {
  int pr, pw;       /* the pipe: read end, write end */
  uint32_t in_pipe; /* bytes in the pipe */
  bool eof;         /* the source ended */
  bool shut;        /* the destination was shut for writing */
  uint8_t *pre;     /* bytes to write to the destination before any from the pipe */
  uint32_t pre_len, pre_off;
  uint64_t in, out; /* bytes read from the source, written to the destination */
} px_dir;

typedef struct px_conn {
  struct px_conn *prev, *next;
  struct px_conn *again_next; /* on the thread's list of connections with work left */
  bool again;
  bool dead;                  /* ended: freed after this batch of events (another may name it) */
  struct px_conn *dead_next;
  int fd[2];    /* 0: the client, 1: the upstream (the engine's duplicates) */
  bool rd[2];   /* the descriptor may have bytes (or an end) to read */
  bool wr[2];   /* the descriptor may take bytes */
  bool tcp[2];
  bool urg[2];  /* urgent data was announced (EPOLLPRI) and its mark not yet passed */
  px_dir d[2];  /* d[k] reads fd[k] and writes fd[1 - k] */
  double id;
  uint32_t slot;
} px_conn;

typedef struct px_cmd {
  struct px_cmd *next;
  px_conn *add;   /* a connection to take, or NULL: a close */
  uint32_t slot;
  double id;
} px_cmd;

struct px_engine;

typedef struct {
  struct px_engine *eng;
  pthread_t thread;
  bool started;
  int ep, wake;
  pthread_mutex_t mu;
  px_cmd *queue, *queue_tail; /* under mu */
  bool stop;                  /* under mu */
  px_conn *conns;             /* owned by the thread */
  px_conn *again;             /* connections that used their turn with work left */
  px_conn *dead;              /* ended this pass, freed at its end */
  px_conn **by_slot;          /* max_slots: this thread's connections by slot (its own table: a
                                 slot may pass to another thread while a stale close is queued here) */
  uint8_t *scratch;           /* PX_SCRATCH bytes: reads past TCP's urgent mark */
  skn_end_records ends; /* records of this pass */
} px_worker;

typedef struct px_engine {
  int nthreads;
  uint32_t max_slots;
  int pipe_size;
  size_t turn_bytes;
  px_counters *counters; /* max_slots of them: written by the owning thread, read by JS */
  uint16_t *owner;       /* max_slots: the thread of the slot's connection (the JS thread's only) */
  _Atomic unsigned next;
  napi_threadsafe_function tsfn;
  bool stopped;
  px_worker *workers;
} px_engine;

/* ---- Ends, reported in batches. */

static void px_push_end(px_worker *w, px_conn *c, int reason, int err) {
  double *r = skn_end_record(&w->ends, PX_REC_FIELDS);
  if (r == NULL) return; /* out of memory: JS still has the counters, and its sockets' close */
  r[0] = c->id;
  r[1] = c->slot;
  r[2] = reason;
  r[3] = err;
  r[4] = (double)c->d[0].in;
  r[5] = (double)c->d[0].out;
  r[6] = (double)c->d[1].in;
  r[7] = (double)c->d[1].out;
}

static void px_flush_ends(px_worker *w, bool final) {
  skn_end_flush(&w->ends, w->eng->tsfn, final);
}

static void px_publish(px_engine *e, px_conn *c) {
  px_counters *k = &e->counters[c->slot];
  atomic_store_explicit(&k->v[PX_FROM_CLIENT], c->d[0].in, memory_order_relaxed);
  atomic_store_explicit(&k->v[PX_TO_UPSTREAM], c->d[0].out, memory_order_relaxed);
  atomic_store_explicit(&k->v[PX_FROM_UPSTREAM], c->d[1].in, memory_order_relaxed);
  atomic_store_explicit(&k->v[PX_TO_CLIENT], c->d[1].out, memory_order_relaxed);
}

/* ---- Connections. */

static void px_close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Frees what a connection holds (descriptors included); for one that never reached a thread too. */
static void px_conn_free(px_conn *c) {
  for (int k = 0; k < 2; k++) {
    px_close_fd(&c->fd[k]);
    px_close_fd(&c->d[k].pr);
    px_close_fd(&c->d[k].pw);
    free(c->d[k].pre);
    c->d[k].pre = NULL;
  }
  free(c);
}

static void px_conn_end(px_worker *w, px_conn *c, int reason, int err) {
  px_engine *e = w->eng;
  for (int k = 0; k < 2; k++) epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd[k], NULL);
  px_publish(e, c);
  if (w->by_slot[c->slot] == c) w->by_slot[c->slot] = NULL;
  if (c->prev) c->prev->next = c->next;
  else w->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->again) {
    /* Unlink from the again list. */
    px_conn **p = &w->again;
    while (*p && *p != c) p = &(*p)->again_next;
    if (*p) *p = c->again_next;
  }
  /* The descriptors are closed before JS hears of the end: its own close is then the last one. */
  for (int k = 0; k < 2; k++) px_close_fd(&c->fd[k]);
  px_push_end(w, c, reason, err);
  c->dead = true;
  c->again = false;
  c->dead_next = w->dead;
  w->dead = c;
}

static void px_bury(px_worker *w) {
  while (w->dead) {
    px_conn *c = w->dead;
    w->dead = c->dead_next;
    px_conn_free(c);
  }
}

/* Whether an end of stream on a TCP socket was a reset (the state CLOSE with an error pending). */
static int px_reset_error(int fd) {
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_state != 7 /* TCP_CLOSE */) return 0;
  int err = 0;
  len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return 0;
  return err;
}

/*
 * TCP urgent data (MSG_OOB): splice(2) stops at the urgent mark and never consumes the urgent
 * byte, so it answers EAGAIN for ever (or 0, once a FIN is queued) with the rest of the stream
 * unread. recv(2) steps over the byte, as Node's reads (the js engine) do: once EPOLLPRI has
 * announced urgent data (so no other read pays for the check), at the mark, one
 * recv into the scratch buffer, and what it read goes out first as the direction's prefix.
 * Returns the bytes read (> 0), 0 when not at the mark (or nothing to read), or -errno.
 */
static ssize_t px_past_mark(px_worker *w, px_conn *c, int src) {
  int at_mark = 0;
  if (!c->urg[src] || ioctl(c->fd[src], SIOCATMARK, &at_mark) != 0 || !at_mark) return 0;
  c->urg[src] = false; /* past this mark; another urgent byte raises EPOLLPRI again */
  ssize_t n = recv(c->fd[src], w->scratch, PX_SCRATCH, MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -errno;
  if (n == 0) return 0;
  px_dir *d = &c->d[src];
  d->pre = malloc((size_t)n);
  if (d->pre == NULL) return -ENOMEM;
  memcpy(d->pre, w->scratch, (size_t)n);
  d->pre_len = (uint32_t)n;
  d->pre_off = 0;
  d->in += (uint64_t)n;
  return n;
}

/*
 * Moves what can move on both directions, within one turn's bytes. Returns 1 while the
 * connection lives and has used its turn with work left, 0 while it lives and waits for its
 * descriptors, -1 when it has ended (and is freed).
 */
static int px_pump(px_worker *w, px_conn *c) {
  size_t moved = 0;
  bool progress = true;
  while (progress) {
    progress = false;
    for (int k = 0; k < 2; k++) {
      px_dir *d = &c->d[k];
      int src = k, dst = 1 - k;
      /* The prefix first, then the pipe. */
      while ((d->pre != NULL || d->in_pipe > 0) && c->wr[dst]) {
        ssize_t n = d->pre != NULL ? send(c->fd[dst], d->pre + d->pre_off, d->pre_len - d->pre_off, MSG_NOSIGNAL | MSG_DONTWAIT)
                                   : splice(d->pr, NULL, c->fd[dst], NULL, d->in_pipe, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n > 0) {
          d->out += (uint64_t)n;
          progress = true;
          if (d->pre == NULL) {
            d->in_pipe -= (uint32_t)n;
          } else if ((d->pre_off += (uint32_t)n) == d->pre_len) {
            free(d->pre);
            d->pre = NULL;
          }
        } else if (n < 0 && errno == EINTR) {
          continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          c->wr[dst] = false;
        } else {
          px_conn_end(w, c, dst == 0 ? PX_CLIENT_FAILED : PX_UPSTREAM_FAILED, n < 0 ? errno : EPIPE);
          return -1;
        }
      }
      if (!d->eof && d->in_pipe == 0 && d->pre == NULL && c->rd[src] && moved < w->eng->turn_bytes) {
        ssize_t n = splice(c->fd[src], NULL, d->pw, NULL, (size_t)w->eng->pipe_size, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        int read_errno = n < 0 ? errno : 0;
        ssize_t past = n == 0 || read_errno == EAGAIN || read_errno == EWOULDBLOCK ? px_past_mark(w, c, src) : 0;
        if (past < 0) {
          px_conn_end(w, c, src == 0 ? PX_CLIENT_FAILED : PX_UPSTREAM_FAILED, (int)-past);
          return -1;
        }
        if (past > 0) {
          moved += (size_t)past;
          progress = true;
        } else if (n > 0) {
          d->in_pipe = (uint32_t)n;
          d->in += (uint64_t)n;
          moved += (size_t)n;
          progress = true;
        } else if (n == 0) {
          int err = c->tcp[src] ? px_reset_error(c->fd[src]) : 0;
          if (err != 0) {
            px_conn_end(w, c, src == 0 ? PX_CLIENT_FAILED : PX_UPSTREAM_FAILED, err);
            return -1;
          }
          d->eof = true;
          progress = true;
        } else if (read_errno == EINTR) {
          progress = true;
        } else if (read_errno == EAGAIN || read_errno == EWOULDBLOCK) {
          c->rd[src] = false;
        } else {
          px_conn_end(w, c, src == 0 ? PX_CLIENT_FAILED : PX_UPSTREAM_FAILED, read_errno);
          return -1;
        }
      }
      if (d->eof && d->in_pipe == 0 && d->pre == NULL && !d->shut) {
        d->shut = true;
        /* ENOTCONN: the destination is gone entirely (a Unix peer that closed); nothing to tell it. */
        if (shutdown(c->fd[dst], SHUT_WR) != 0 && errno != ENOTCONN) {
          px_conn_end(w, c, dst == 0 ? PX_CLIENT_FAILED : PX_UPSTREAM_FAILED, errno);
          return -1;
        }
        progress = true;
      }
    }
    if (c->d[0].shut && c->d[1].shut) {
      px_conn_end(w, c, PX_CLEAN, 0);
      return -1;
    }
    if (moved >= w->eng->turn_bytes) break;
  }
  px_publish(w->eng, c);
  /*
   * Work left, which no edge will announce: bytes held for a destination that may take them (the
   * turn ended right after a read), or a source that may still have bytes, with room for them.
   */
  for (int k = 0; k < 2; k++) {
    px_dir *d = &c->d[k];
    if ((d->pre != NULL || d->in_pipe > 0) && c->wr[1 - k]) return 1;
    if (!d->eof && d->in_pipe == 0 && d->pre == NULL && c->rd[k]) return 1;
  }
  return 0;
}

static void px_take(px_worker *w, px_conn *c) {
  c->next = w->conns;
  if (w->conns) w->conns->prev = c;
  w->conns = c;
  w->by_slot[c->slot] = c;
  for (int k = 0; k < 2; k++) {
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET, .data.u64 = (uint64_t)(uintptr_t)c | (uint64_t)k};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd[k], &ev) != 0) {
      px_conn_end(w, c, k == 0 ? PX_CLIENT_FAILED : PX_UPSTREAM_FAILED, errno);
      return;
    }
  }
  /* Edge-triggered: what is already readable or writable raises no edge until it changes. */
  c->rd[0] = c->rd[1] = c->wr[0] = c->wr[1] = true;
  if (px_pump(w, c) == 1) {
    c->again = true;
    c->again_next = w->again;
    w->again = c;
  }
}

static void px_event(px_worker *w, px_conn *c, int k, uint32_t events) {
  if (c->dead) return;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) c->rd[k] = true;
  if ((events & EPOLLPRI) && c->tcp[k]) c->urg[k] = true;
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->wr[k] = true;
  if (events & EPOLLERR) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd[k], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
      /* What the side had sent before it failed is lost with it, as a reset loses it. */
      px_conn_end(w, c, k == 0 ? PX_CLIENT_FAILED : PX_UPSTREAM_FAILED, err);
      return;
    }
  }
  if (c->again) return; /* it will get its turn from the again list */
  if (px_pump(w, c) == 1) {
    c->again = true;
    c->again_next = w->again;
    w->again = c;
  }
}

static void *px_worker_main(void *arg) {
  px_worker *w = arg;
  struct epoll_event evs[PX_MAX_EVENTS];
  bool stop = false;
  while (!stop) {
    int n = epoll_wait(w->ep, evs, PX_MAX_EVENTS, w->again != NULL ? 0 : -1);
    if (n < 0 && errno != EINTR) break;
    bool woken = false;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == 0) {
        woken = true;
        continue;
      }
      uint64_t u = evs[i].data.u64;
      px_event(w, (px_conn *)(uintptr_t)(u & ~(uint64_t)1), (int)(u & 1), evs[i].events);
    }
    /* Connections that used their turn with work left: another turn each, in order. */
    px_conn *list = w->again;
    w->again = NULL;
    while (list) {
      px_conn *c = list;
      list = c->again_next;
      c->again = false;
      c->again_next = NULL;
      if (px_pump(w, c) == 1) {
        c->again = true;
        c->again_next = w->again;
        w->again = c;
      }
    }
    if (woken) {
      uint64_t v;
      if (read(w->wake, &v, sizeof v) < 0) { /* EAGAIN: another wake-up took it */ }
      pthread_mutex_lock(&w->mu);
      px_cmd *q = w->queue;
      w->queue = w->queue_tail = NULL;
      stop = w->stop;
      pthread_mutex_unlock(&w->mu);
      while (q) {
        px_cmd *next = q->next;
        if (q->add != NULL) {
          if (stop) {
            px_push_end(w, q->add, PX_STOPPED, 0);
            px_conn_free(q->add);
          } else {
            px_take(w, q->add);
          }
        } else {
          px_conn *c = w->by_slot[q->slot];
          if (c != NULL && c->id == q->id) px_conn_end(w, c, PX_STOPPED, 0);
        }
        free(q);
        q = next;
      }
    }
    px_bury(w);
    px_flush_ends(w, false);
  }
  while (w->conns) px_conn_end(w, w->conns, PX_STOPPED, 0);
  px_bury(w);
  px_flush_ends(w, true);
  return NULL;
}

static void px_wake(px_worker *w) {
  uint64_t one = 1;
  if (write(w->wake, &one, sizeof one) < 0) { /* the counter is full: the thread is awake anyway */ }
}

/* Queues a command for a thread; false after stop (the caller keeps the command). */
static bool px_enqueue(px_worker *w, px_cmd *cmd) {
  pthread_mutex_lock(&w->mu);
  bool ok = !w->stop;
  bool was_empty = w->queue == NULL;
  if (ok) {
    cmd->next = NULL;
    if (w->queue_tail) w->queue_tail->next = cmd;
    else w->queue = cmd;
    w->queue_tail = cmd;
  }
  pthread_mutex_unlock(&w->mu);
  if (ok && was_empty) px_wake(w);
  return ok;
}

/* ---- The JS side. */

static void px_engine_stop(px_engine *e) {
  if (e->stopped) return;
  e->stopped = true;
  for (int i = 0; i < e->nthreads; i++) {
    px_worker *w = &e->workers[i];
    if (!w->started) continue;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_mutex_unlock(&w->mu);
    px_wake(w);
  }
  for (int i = 0; i < e->nthreads; i++) {
    px_worker *w = &e->workers[i];
    if (w->started) pthread_join(w->thread, NULL);
    w->started = false;
    /* Commands queued after the thread's last look at the queue: never served. */
    for (px_cmd *q = w->queue; q;) {
      px_cmd *next = q->next;
      if (q->add) px_conn_free(q->add);
      free(q);
      q = next;
    }
    w->queue = w->queue_tail = NULL;
    if (w->ep >= 0) close(w->ep);
    if (w->wake >= 0) close(w->wake);
    w->ep = w->wake = -1;
    skn_end_free(&w->ends);
    free(w->by_slot);
    free(w->scratch);
    w->by_slot = NULL;
    w->scratch = NULL;
    pthread_mutex_destroy(&w->mu);
  }
  napi_release_threadsafe_function(e->tsfn, napi_tsfn_release);
}

static void px_engine_free(px_engine *e) {
  free(e->workers);
  free(e->counters);
  free(e->owner);
  free(e);
}

static void px_cleanup_hook(void *arg) {
  px_engine_stop(arg);
}

static void px_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  px_engine *e = data;
  px_engine_stop(e);
  napi_remove_env_cleanup_hook(env, px_cleanup_hook, e);
  px_engine_free(e);
}

#define PX_THROW(code, msg)                                  \
  do {                                                       \
    napi_throw_error(env, code, "socketkit native: " msg);   \
    return NULL;                                             \
  } while (0)

static px_engine *px_get(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static napi_value px_js_start(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  int32_t threads, slots, pipe_size, turn;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || napi_get_value_int32(env, argv[0], &threads) != napi_ok || threads < 1 ||
      threads > PX_MAX_THREADS || napi_get_value_int32(env, argv[1], &slots) != napi_ok || slots < 1 || slots > PX_MAX_SLOTS ||
      napi_get_value_int32(env, argv[2], &pipe_size) != napi_ok || pipe_size < 0 || napi_get_value_int32(env, argv[3], &turn) != napi_ok || turn < 0 ||
      napi_typeof(env, argv[4], &t) != napi_ok || t != napi_function) {
    PX_THROW("ERR_INVALID_ARG", "proxyEngineStart(threads, maxSlots, pipeSize, turnBytes, onEnds): bad arguments");
  }
  px_engine *e = calloc(1, sizeof *e);
  if (e == NULL) PX_THROW("ERR_NATIVE", "out of memory");
  e->workers = calloc((size_t)threads, sizeof *e->workers);
  e->counters = calloc((size_t)slots, sizeof *e->counters);
  e->owner = calloc((size_t)slots, sizeof *e->owner);
  if (e->workers == NULL || e->counters == NULL || e->owner == NULL) {
    px_engine_free(e);
    PX_THROW("ERR_NATIVE", "out of memory");
  }
  e->nthreads = threads;
  e->max_slots = (uint32_t)slots;
  e->pipe_size = pipe_size;
  e->turn_bytes = turn > 0 ? (size_t)turn : PX_TURN_BYTES;
  if (pipe_size == 0) {
    /* The bytes one splice from a socket may move: what an empty pipe holds by default. */
    int p[2];
    e->pipe_size = 65536;
    if (pipe2(p, O_CLOEXEC) == 0) {
      int sz = fcntl(p[1], F_GETPIPE_SZ);
      if (sz > 0) e->pipe_size = sz;
      close(p[0]);
      close(p[1]);
    }
  }
  napi_value name;
  if (napi_create_string_utf8(env, "socketkit.proxyEngine", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, argv[4], NULL, name, 0, 1, NULL, NULL, NULL, skn_end_call_js, &e->tsfn) != napi_ok) {
    px_engine_free(e);
    PX_THROW("ERR_NATIVE", "could not create the engine's callback");
  }
  /* Referenced: the process lives until the engine is stopped (ends still on their way are delivered). */
  for (int i = 0; i < threads; i++) {
    px_worker *w = &e->workers[i];
    w->eng = e;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->by_slot = calloc((size_t)slots, sizeof *w->by_slot);
    w->scratch = malloc(PX_SCRATCH);
    pthread_mutex_init(&w->mu, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (w->ep < 0 || w->wake < 0 || w->by_slot == NULL || w->scratch == NULL || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev) < 0 || pthread_create(&w->thread, NULL, px_worker_main, w) != 0) {
      for (int j = i + 1; j < threads; j++) {
        e->workers[j].ep = e->workers[j].wake = -1;
        pthread_mutex_init(&e->workers[j].mu, NULL);
      }
      px_engine_stop(e);
      px_engine_free(e);
      PX_THROW("ERR_NATIVE", "could not start the engine's threads");
    }
    w->started = true;
  }
  napi_value handle;
  if (napi_create_external(env, e, px_finalize, NULL, &handle) != napi_ok) {
    px_engine_stop(e);
    px_engine_free(e);
    PX_THROW("ERR_NATIVE", "could not create the engine handle");
  }
  napi_add_env_cleanup_hook(env, px_cleanup_hook, e);
  return handle;
}

static bool px_is_tcp(int fd) {
  int domain = 0;
  socklen_t len = sizeof domain;
  return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && (domain == AF_INET || domain == AF_INET6);
}

static napi_value px_js_add(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], result;
  int32_t cfd, ufd;
  uint32_t slot;
  double id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7) PX_THROW("ERR_INVALID_ARG", "proxyEngineAdd(handle, clientFd, upstreamFd, id, slot, prefixToUpstream, prefixToClient)");
  px_engine *e = px_get(env, argv[0]);
  if (e == NULL || napi_get_value_int32(env, argv[1], &cfd) != napi_ok || cfd < 0 || napi_get_value_int32(env, argv[2], &ufd) != napi_ok || ufd < 0 ||
      napi_get_value_double(env, argv[3], &id) != napi_ok || napi_get_value_uint32(env, argv[4], &slot) != napi_ok || slot >= e->max_slots) {
    PX_THROW("ERR_INVALID_ARG", "proxyEngineAdd: bad arguments");
  }
  /* Bytes Node read before the handoff: [0] from the client (for the upstream), [1] from the upstream (for the client). */
  void *pre[2] = {NULL, NULL};
  size_t pre_len[2] = {0, 0};
  for (int k = 0; k < 2; k++) {
    bool is_buf = false;
    if (napi_is_buffer(env, argv[5 + k], &is_buf) == napi_ok && is_buf && napi_get_buffer_info(env, argv[5 + k], &pre[k], &pre_len[k]) != napi_ok) {
      PX_THROW("ERR_INVALID_ARG", "proxyEngineAdd: bad prefix");
    }
  }
  int r = 0;
  px_conn *c = calloc(1, sizeof *c);
  /* No descriptor yet (calloc's zeros would be fd 0 to px_conn_free). */
  if (c != NULL)
    for (int k = 0; k < 2; k++) c->fd[k] = c->d[k].pr = c->d[k].pw = -1;
  if (e->stopped) {
    r = -ESHUTDOWN;
  } else if (c == NULL || pre_len[0] > UINT32_MAX || pre_len[1] > UINT32_MAX) {
    r = -ENOMEM;
  } else {
    c->id = id;
    c->slot = slot;
    int fds[2] = {cfd, ufd};
    for (int k = 0; k < 2 && r == 0; k++) {
      c->fd[k] = fcntl(fds[k], F_DUPFD_CLOEXEC, 0);
      if (c->fd[k] < 0) {
        r = -errno;
        break;
      }
      int fl = fcntl(c->fd[k], F_GETFL);
      if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(c->fd[k], F_SETFL, fl | O_NONBLOCK);
      c->tcp[k] = px_is_tcp(c->fd[k]);
      int p[2];
      if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
        r = -errno;
        break;
      }
      c->d[k].pr = p[0];
      c->d[k].pw = p[1];
      if (e->pipe_size > 0) fcntl(p[1], F_SETPIPE_SZ, e->pipe_size); /* best effort: the default stays */
    }
    for (int k = 0; k < 2 && r == 0; k++) {
      if (pre_len[k] == 0) continue;
      c->d[k].pre = malloc(pre_len[k]);
      if (c->d[k].pre == NULL) {
        r = -ENOMEM;
      } else {
        memcpy(c->d[k].pre, pre[k], pre_len[k]);
        c->d[k].pre_len = (uint32_t)pre_len[k];
      }
    }
  }
  if (r == 0) {
    for (int k = 0; k < 4; k++) atomic_store_explicit(&e->counters[slot].v[k], 0, memory_order_relaxed);
    px_cmd *cmd = malloc(sizeof *cmd);
    unsigned t = atomic_fetch_add_explicit(&e->next, 1, memory_order_relaxed) % (unsigned)e->nthreads;
    px_worker *w = &e->workers[t];
    e->owner[slot] = (uint16_t)t;
    if (cmd == NULL) {
      r = -ENOMEM;
    } else {
      cmd->add = c;
      cmd->slot = slot;
      cmd->id = id;
      if (!px_enqueue(w, cmd)) {
        free(cmd);
        r = -ESHUTDOWN;
      }
    }
  }
  if (r != 0 && c != NULL) px_conn_free(c);
  napi_create_int32(env, r, &result);
  return result;
}

static napi_value px_js_close(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  uint32_t slot;
  double id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) PX_THROW("ERR_INVALID_ARG", "proxyEngineClose(handle, slot, id)");
  px_engine *e = px_get(env, argv[0]);
  if (e == NULL || napi_get_value_uint32(env, argv[1], &slot) != napi_ok || slot >= e->max_slots || napi_get_value_double(env, argv[2], &id) != napi_ok) {
    PX_THROW("ERR_INVALID_ARG", "proxyEngineClose: bad arguments");
  }
  if (e->stopped) return NULL;
  /* To the thread that owns the slot's connection; it acts only if the id still matches. */
  px_cmd *cmd = malloc(sizeof *cmd);
  if (cmd == NULL) PX_THROW("ERR_NATIVE", "out of memory");
  cmd->add = NULL;
  cmd->slot = slot;
  cmd->id = id;
  if (!px_enqueue(&e->workers[e->owner[slot]], cmd)) free(cmd);
  return NULL;
}

static napi_value px_js_counters(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], ab, arr;
  uint32_t slot;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) PX_THROW("ERR_INVALID_ARG", "proxyEngineCounters(handle, slot)");
  px_engine *e = px_get(env, argv[0]);
  if (e == NULL || napi_get_value_uint32(env, argv[1], &slot) != napi_ok || slot >= e->max_slots) PX_THROW("ERR_INVALID_ARG", "proxyEngineCounters: bad arguments");
  void *p;
  if (napi_create_arraybuffer(env, 4 * sizeof(double), &p, &ab) != napi_ok || napi_create_typedarray(env, napi_float64_array, 4, ab, 0, &arr) != napi_ok) {
    PX_THROW("ERR_NATIVE", "out of memory");
  }
  double *out = p;
  for (int k = 0; k < 4; k++) out[k] = (double)atomic_load_explicit(&e->counters[slot].v[k], memory_order_relaxed);
  return arr;
}

static napi_value px_js_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) PX_THROW("ERR_INVALID_ARG", "proxyEngineStop(handle)");
  px_engine *e = px_get(env, argv[0]);
  if (e == NULL) PX_THROW("ERR_INVALID_ARG", "proxyEngineStop: bad handle");
  px_engine_stop(e);
  return NULL;
}

napi_value skn_register_proxy_engine(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"proxyEngineStart", NULL, px_js_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"proxyEngineAdd", NULL, px_js_add, NULL, NULL, NULL, napi_enumerable, NULL},
      {"proxyEngineClose", NULL, px_js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"proxyEngineCounters", NULL, px_js_counters, NULL, NULL, NULL, napi_enumerable, NULL},
      {"proxyEngineStop", NULL, px_js_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
