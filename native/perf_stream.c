/*
 * The throughput test's TCP streams (socketkit perf, perf-server): one thread per stream, for
 * the stream's whole life.
 *
 * A stream's loop is what iperf3's is: the receiver recv(2)s into one reused buffer and drops the
 * bytes; the sender send(2)s one zeroed buffer over and over, or with -Z sendfile(2)s a small
 * file of zeros over and over. The loop runs on a thread of its own from the first byte to the
 * last: progress is read from a counter, and the thread hands back to JS only when the first byte
 * has arrived and when the stream is over. An earlier design ran the loop on the libuv pool in
 * slices of 16 MiB, one call per slice; each return to JS let the scheduler move the loop to
 * another thread and core, and sendfile's one-stream rate fell from 24-25 to 14-15 Gbit/s on
 * loopback (a 2-core VM, measured against a C receiver in interleaved rounds).
 *
 * JS API:
 *   perfStreamStart(mode, fd, fileFd, fileSize, length, maxBytes, callback(errno, bytes, eof, done)) -> id (>= 0) or -errno
 *     mode 0: receive from `fd` until the peer's end of stream (eof), an error (errno) or a stop.
 *     mode 1: sendfile(2) from `fileFd` (offsets 0 to fileSize, again and again) into `fd`.
 *     mode 2: send(2) a zeroed buffer of `length` bytes into `fd`, again and again.
 *     A sender stops after `maxBytes` (0: no limit), on an error, or on a stop. `fd` must be a
 *     private duplicate of a non-blocking socket that nothing else reads (or, for a sender,
 *     writes) meanwhile; once the call returned an id, it is the helper's: the thread closes it
 *     when its loop has ended, before the final callback (on an error return it stays the
 *     caller's). The thread waits with poll(2) on the socket and on a stop eventfd, never spinning.
 *     When the calling environment goes away (a Worker terminated) while a loop runs, the loop
 *     is stopped and ends without calling back: its thread closes its descriptors and frees its
 *     slot itself, and never touches the threadsafe function Node has deleted.
 *     callback(0, bytes, false, false) once when a receiver's first bytes arrived; then once
 *     callback(errno, bytes, eof, true) at the end (errno 0 and eof false after a stop).
 *   perfStreamBytes(id) -> bytes moved so far (until the final callback; then the slot is reused).
 *   perfStreamStop(id)  the loop ends at its next step (safe after it has ended).
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include "modules.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

/* Two directions of the largest test (PERF_LIMITS.streams in src/perf/protocol.ts is 128), and a second test alongside. */
#define PS_MAX_STREAMS 512
#define PS_RECV_CHUNK (128 * 1024)
#define PS_MAX_LENGTH (16 * 1024 * 1024)

enum { PS_RECV = 0, PS_SENDFILE = 1, PS_SEND = 2 };

typedef struct {
  int mode;
  int fd;
  int file_fd;
  int64_t file_size;
  int64_t length;
  int64_t max_bytes;
  int stop_fd;
  /* Written by the stream's thread, read by JS (perfStreamBytes): atomics. */
  int64_t bytes;
  bool stopping;
  int err;
  bool eof;
  napi_threadsafe_function tsfn;
  bool used;
  /* Counts the slot's uses: a finalizer names the use it belongs to. */
  uint32_t gen;
  /* The environment's threadsafe function was finalized while the loop ran (ps_lock). */
  bool gone;
} ps_stream;

/* What the threadsafe function's finalizer gets: the slot and the use. */
typedef struct {
  int id;
  uint32_t gen;
} ps_token;

static ps_stream ps_streams[PS_MAX_STREAMS];
static pthread_mutex_t ps_lock = PTHREAD_MUTEX_INITIALIZER;

static bool ps_stopping(ps_stream* s) {
  return __atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE);
}

/* Waits until `fd` is ready for `events` or the stream is stopped: 0 (ready, or a stop: the caller checks), or an errno. */
static int ps_wait(ps_stream* s, short events) {
  struct pollfd p[2] = {{.fd = s->fd, .events = events, .revents = 0}, {.fd = s->stop_fd, .events = POLLIN, .revents = 0}};
  for (;;) {
    int r = poll(p, 2, -1);
    if (r >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

static void ps_add(ps_stream* s, int64_t n) {
  __atomic_store_n(&s->bytes, s->bytes + n, __ATOMIC_RELEASE);
}

static int ps_receive(ps_stream* s) {
  char* buf = malloc(PS_RECV_CHUNK);
  if (buf == NULL) return ENOMEM;
  int err = 0;
  bool told = false;
  while (!ps_stopping(s)) {
    ssize_t n = recv(s->fd, buf, PS_RECV_CHUNK, MSG_DONTWAIT);
    if (n > 0) {
      ps_add(s, n);
      if (!told) {
        told = true;
        /* The first bytes: JS hears of them at once (a server's test may start on them). Under
         * the lock: the function may have been finalized with its environment (then JS is gone). */
        pthread_mutex_lock(&ps_lock);
        if (!s->gone) napi_call_threadsafe_function(s->tsfn, NULL, napi_tsfn_nonblocking);
        pthread_mutex_unlock(&ps_lock);
      }
    } else if (n == 0) {
      s->eof = true;
      break;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if ((err = ps_wait(s, POLLIN | POLLRDHUP)) != 0) break;
    } else {
      err = errno;
      break;
    }
  }
  free(buf);
  return err;
}

static int ps_send(ps_stream* s) {
  char* buf = NULL;
  if (s->mode == PS_SEND && (buf = calloc(1, (size_t)s->length)) == NULL) return ENOMEM;
  int err = 0;
  off_t off = 0;
  while (!ps_stopping(s) && (s->max_bytes == 0 || s->bytes < s->max_bytes)) {
    int64_t want = s->mode == PS_SEND ? s->length : s->file_size - off;
    if (s->max_bytes > 0 && want > s->max_bytes - s->bytes) want = s->max_bytes - s->bytes;
    ssize_t n;
#ifdef __linux__
    if (s->mode == PS_SENDFILE) {
      n = sendfile(s->fd, s->file_fd, &off, (size_t)want);
      if (off >= s->file_size) off = 0;
      if (n == 0) {
        err = EIO; /* the file is shorter than it was said to be */
        break;
      }
    } else
#endif
      n = send(s->fd, buf, (size_t)want, MSG_NOSIGNAL);
    if (n > 0) {
      ps_add(s, n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if ((err = ps_wait(s, POLLOUT)) != 0) break;
    } else {
      err = n < 0 ? errno : EIO;
      break;
    }
  }
  free(buf);
  return err;
}

/* Frees the slot (its stop eventfd closed); the caller holds ps_lock. */
static void ps_free_slot_locked(ps_stream* s) {
  if (s->stop_fd >= 0) close(s->stop_fd);
  s->stop_fd = -1;
  s->used = false;
}

static void* ps_thread(void* arg) {
  ps_stream* s = arg;
#ifdef __linux__
  s->err = s->mode == PS_RECV ? ps_receive(s) : ps_send(s);
#else
  s->err = ENOSYS;
#endif
  close(s->fd);
  s->fd = -1;
  /* Under the lock, so the finalizer cannot delete the function between the check and the calls;
   * once the final call is queued the slot is JS's to free, and nothing here touches it again. */
  pthread_mutex_lock(&ps_lock);
  if (!s->gone) {
    napi_call_threadsafe_function(s->tsfn, s, napi_tsfn_nonblocking);
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  } else {
    ps_free_slot_locked(s);
  }
  pthread_mutex_unlock(&ps_lock);
  return NULL;
}

/*
 * On the JS thread, when the threadsafe function is finalized: after the final call in the
 * normal course (the slot is then free, or someone else's: the use tells), or when its
 * environment is torn down while the loop runs: the loop is stopped, and its thread cleans up.
 */
static void ps_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  ps_token* t = data;
  pthread_mutex_lock(&ps_lock);
  ps_stream* s = &ps_streams[t->id];
  if (s->used && s->gen == t->gen) {
    s->gone = true;
    __atomic_store_n(&s->stopping, true, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (s->stop_fd >= 0) (void)!write(s->stop_fd, &one, sizeof one);
  }
  pthread_mutex_unlock(&ps_lock);
  free(t);
}

static void ps_free_slot(ps_stream* s) {
  pthread_mutex_lock(&ps_lock);
  ps_free_slot_locked(s);
  pthread_mutex_unlock(&ps_lock);
}

/* On the JS thread. data is NULL for the first-bytes call, the stream for the final one (after which the slot is free). */
static void ps_call_js(napi_env env, napi_value js_cb, void* context, void* data) {
  (void)context;
  ps_stream* s = data;
  int err = 0;
  bool eof = false, done = s != NULL;
  double bytes = 0;
  if (done) {
    err = s->err;
    eof = s->eof;
    bytes = (double)__atomic_load_n(&s->bytes, __ATOMIC_ACQUIRE);
    ps_free_slot(s);
  }
  if (env == NULL || js_cb == NULL) return;
  napi_value argv[4], undefined;
  if (napi_create_int32(env, err, &argv[0]) != napi_ok || napi_create_double(env, bytes, &argv[1]) != napi_ok ||
      napi_get_boolean(env, eof, &argv[2]) != napi_ok || napi_get_boolean(env, done, &argv[3]) != napi_ok || napi_get_undefined(env, &undefined) != napi_ok) {
    return;
  }
  napi_call_function(env, undefined, js_cb, 4, argv, NULL);
}

static bool ps_int_arg(napi_env env, napi_value v, double max, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > max || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

static napi_value ps_result(napi_env env, int32_t v) {
  napi_value r;
  return napi_create_int32(env, v, &r) == napi_ok ? r : NULL;
}

static napi_value js_perf_stream_start(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_valuetype t;
  int64_t mode = 0, fd = 0, file_fd = 0, file_size = 0, length = 0, max_bytes = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 7 || napi_typeof(env, argv[6], &t) != napi_ok || t != napi_function ||
      !ps_int_arg(env, argv[0], 2, &mode) || !ps_int_arg(env, argv[1], INT32_MAX, &fd) || !ps_int_arg(env, argv[2], INT32_MAX, &file_fd) ||
      !ps_int_arg(env, argv[3], 0x7ffff000, &file_size) || !ps_int_arg(env, argv[4], PS_MAX_LENGTH, &length) ||
      !ps_int_arg(env, argv[5], 9007199254740991.0, &max_bytes) || (mode == PS_SENDFILE && file_size == 0) || (mode == PS_SEND && length == 0)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "perfStreamStart(mode 0|1|2, fd, fileFd, fileSize (above 0 for mode 1), length (1..16 MiB for mode 2), maxBytes, callback)");
    return NULL;
  }
  int id = -1;
  pthread_mutex_lock(&ps_lock);
  for (int i = 0; i < PS_MAX_STREAMS; i++) {
    if (!ps_streams[i].used) {
      id = i;
      ps_streams[i].used = true;
      ps_streams[i].gone = false;
      ps_streams[i].gen++;
      break;
    }
  }
  pthread_mutex_unlock(&ps_lock);
  if (id < 0) return ps_result(env, -EMFILE);
  ps_stream* s = &ps_streams[id];
  s->mode = (int)mode;
  s->fd = (int)fd;
  s->file_fd = (int)file_fd;
  s->file_size = file_size;
  s->length = length;
  s->max_bytes = max_bytes;
  s->bytes = 0;
  s->stopping = false;
  s->err = 0;
  s->eof = false;
  s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int err = s->stop_fd < 0 ? errno : 0;
  napi_value name;
  ps_token* token = err == 0 ? malloc(sizeof *token) : NULL;
  if (err == 0 && token == NULL) err = ENOMEM;
  if (token != NULL) *token = (ps_token){.id = id, .gen = s->gen};
  if (err == 0 && (napi_create_string_utf8(env, "socketkit perf stream", NAPI_AUTO_LENGTH, &name) != napi_ok ||
                   napi_create_threadsafe_function(env, argv[6], NULL, name, 0, 1, token, ps_finalize, NULL, ps_call_js, &s->tsfn) != napi_ok)) {
    free(token);
    err = ENOMEM;
  } else if (err == 0) {
    pthread_attr_t attr;
    pthread_t th;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    err = pthread_create(&th, &attr, ps_thread, s);
    pthread_attr_destroy(&attr);
    if (err != 0) napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
  }
  if (err != 0) {
    ps_free_slot(s);
    return ps_result(env, -err);
  }
  return ps_result(env, id);
}

/* The slot `id` names, if it is in use; NULL (after a TypeError for a bad argument) otherwise. */
static ps_stream* ps_arg(napi_env env, napi_callback_info info, bool* bad) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t id;
  *bad = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "perfStream(id): an id from perfStreamStart");
    *bad = true;
    return NULL;
  }
  return id >= 0 && id < PS_MAX_STREAMS && ps_streams[id].used ? &ps_streams[id] : NULL;
}

static napi_value js_perf_stream_bytes(napi_env env, napi_callback_info info) {
  bool bad;
  ps_stream* s = ps_arg(env, info, &bad);
  if (bad) return NULL;
  napi_value r;
  if (napi_create_double(env, s == NULL ? 0 : (double)__atomic_load_n(&s->bytes, __ATOMIC_ACQUIRE), &r) != napi_ok) return NULL;
  return r;
}

static napi_value js_perf_stream_stop(napi_env env, napi_callback_info info) {
  bool bad;
  ps_stream* s = ps_arg(env, info, &bad);
  if (bad || s == NULL) return NULL;
  pthread_mutex_lock(&ps_lock);
  if (s->used && s->stop_fd >= 0) {
    __atomic_store_n(&s->stopping, true, __ATOMIC_RELEASE);
    uint64_t one = 1;
    (void)!write(s->stop_fd, &one, sizeof one);
  }
  pthread_mutex_unlock(&ps_lock);
  return NULL;
}

napi_value skn_register_perf_stream(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"perfStreamStart", NULL, js_perf_stream_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"perfStreamBytes", NULL, js_perf_stream_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"perfStreamStop", NULL, js_perf_stream_stop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: registering perf_stream failed");
    return NULL;
  }
  return exports;
}
