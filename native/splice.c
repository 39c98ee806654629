/*
 * splice(2) pumps for `connect` and `listen` (Linux): one direction of a relay (stdin pipe ->
 * socket, socket -> stdout) moved by the kernel on a thread of its own, with no copy through
 * user space and no JS per chunk.
 *
 * JS API:
 *   spliceStart(inFd, outFd, shutdownOut, callback(errno, bytes, endedMs)) -> id (>= 0) or -errno
 *     Starts a thread that moves bytes from inFd to outFd until inFd ends (then, with
 *     shutdownOut, shutdown(outFd, SHUT_WR): the half-close), an error, or spliceStop(id).
 *     From a pipe into a socket the thread reads and writes through a 1 MiB buffer (cheaper than
 *     splicing a pipe's pages into TCP, see skn_pump). Otherwise, when either fd is a pipe the
 *     bytes go with one splice per step; else through a
 *     kernel pipe of the thread's own (socket -> pipe -> file or /dev/null). Where splice does
 *     not apply (EINVAL before the first byte: /dev/null or /dev/zero as stdin, a file opened
 *     for appending) the thread moves the bytes with read and write instead. Both fds may be
 *     non-blocking: the thread waits for them with poll(2), never spinning. callback(0, n) once
 *     inFd ended and every byte is in outFd; callback(errno, n) on a failure (ECANCELED after a
 *     stop), n being the bytes moved into outFd. endedMs: when inFd's end was seen, before the shutdown
 *     (CLOCK_MONOTONIC, ms), so the order of two directions' ends is the order they happened in, not the order
 *     their callbacks reached the JS thread.
 *   spliceStop(id)  wakes the thread, which ends with ECANCELED (safe after it has ended).
 *
 * The fds stay the caller's: it keeps them open until the callback has run.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include "modules.h"

#define SKN_SPLICE_CHUNK (1 << 20)
#define SKN_SPLICE_MAX_JOBS 64

typedef struct {
  int in_fd;
  int out_fd;
  bool shutdown_out;
  int stop_fd;
  int err;
  int64_t bytes;
  /* CLOCK_MONOTONIC, ms, when inFd's end was seen (before any shutdown), or the pump failed; 0 before. */
  double ended_ms;
  napi_threadsafe_function tsfn;
  bool used;
} skn_splice_job;

static skn_splice_job skn_splice_jobs[SKN_SPLICE_MAX_JOBS];
static pthread_mutex_t skn_splice_lock = PTHREAD_MUTEX_INITIALIZER;

/* Waits until `fd` has `events` or the job is stopped; returns 0, or ECANCELED, or an errno. */
static int skn_wait(skn_splice_job *job, int fd, short events) {
  for (;;) {
    struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = job->stop_fd, .events = POLLIN}};
    int r = poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (p[1].revents) return ECANCELED;
    /* Ready, or an error or hang-up that the next splice reports (or reads as the end). */
    if (p[0].revents) return 0;
  }
}

/*
 * Notes when this direction's input ended, once: before our shutdown goes out (so a peer that
 * answers our FIN always ends later on this clock) and right after the end of a socket is read.
 */
static void skn_mark_end(skn_splice_job *job) {
  if (job->ended_ms > 0) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  job->ended_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* One splice from `from` to `to`: > 0 bytes moved, 0 the end of `from`, < 0 -errno (EAGAIN handled by the caller). */
static ssize_t skn_step(int from, int to, size_t len) {
  for (;;) {
    ssize_t n = splice(from, NULL, to, NULL, len, SPLICE_F_MOVE | SPLICE_F_MORE | SPLICE_F_NONBLOCK);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    return -errno;
  }
}

/* Moves exactly `len` bytes out of the pipe `from` into `to`. Returns 0 or an errno. */
static int skn_drain(skn_splice_job *job, int from, int to, size_t len) {
  while (len > 0) {
    ssize_t n = skn_step(from, to, len);
    if (n > 0) {
      len -= (size_t)n;
      job->bytes += n;
    } else if (n == -EAGAIN) {
      int e = skn_wait(job, to, POLLOUT);
      if (e) return e;
    } else if (n == 0) {
      return EIO; /* a pipe that held bytes cannot be at its end */
    } else {
      return (int)-n;
    }
  }
  return 0;
}

/* read/write through one buffer, for the fds splice refuses. Returns 0 at the end of in_fd, or an errno. */
/*
 * Read and write through a ring of SKN_RING buffers of 1 MiB, the writes on a second thread: the
 * next read from the pipe overlaps the write of the last one into the socket, so neither side of
 * the relay waits for the other (measured with a C sender on 2 GiB of zeros into `listen`: 2.7-3.0
 * GB/s against 2.1 for one thread doing both in turn). What it holds is bounded: 4 MiB.
 */
#define SKN_RING 4

typedef struct {
  skn_splice_job *job;
  char *buf[SKN_RING];
  ssize_t len[SKN_RING];
  bool full[SKN_RING];
  bool writer_done; /* the writer has stopped (the end, or werr) */
  int werr;
  pthread_mutex_t mu;
  pthread_cond_t cv;
} skn_ring;

static void *skn_ring_writer(void *arg) {
  skn_ring *r = arg;
  skn_splice_job *job = r->job;
  int err = 0;
  for (int i = 0;; i = (i + 1) % SKN_RING) {
    pthread_mutex_lock(&r->mu);
    while (!r->full[i]) pthread_cond_wait(&r->cv, &r->mu);
    ssize_t n = r->len[i];
    pthread_mutex_unlock(&r->mu);
    if (n == 0) break; /* the input ended (or the reader failed) */
    for (ssize_t off = 0; off < n && err == 0;) {
      ssize_t m = write(job->out_fd, r->buf[i] + off, (size_t)(n - off));
      if (m > 0) {
        off += m;
        job->bytes += m;
      } else if (m < 0 && errno == EAGAIN) {
        err = skn_wait(job, job->out_fd, POLLOUT);
      } else if (m < 0 && errno != EINTR) {
        err = errno;
      }
    }
    pthread_mutex_lock(&r->mu);
    r->full[i] = false;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (err) break;
  }
  pthread_mutex_lock(&r->mu);
  r->werr = err;
  r->writer_done = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  /* A reader waiting for input learns of the failure now, not with the next byte (as a stop). */
  if (err != 0 && err != ECANCELED) {
    uint64_t one = 1;
    if (write(job->stop_fd, &one, sizeof one) < 0) { /* the counter is full: the reader is woken anyway */ }
  }
  return NULL;
}

static int skn_copy(skn_splice_job *job) {
  skn_ring *r = calloc(1, sizeof *r);
  if (r == NULL) return ENOMEM;
  r->job = job;
  int err = 0;
  for (int i = 0; i < SKN_RING && err == 0; i++) {
    r->buf[i] = malloc(SKN_SPLICE_CHUNK);
    if (r->buf[i] == NULL) err = ENOMEM;
  }
  pthread_t writer;
  bool started = false;
  if (err == 0) {
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    started = pthread_create(&writer, NULL, skn_ring_writer, r) == 0;
    if (!started) {
      err = EAGAIN;
      pthread_mutex_destroy(&r->mu);
      pthread_cond_destroy(&r->cv);
    }
  }
  for (int i = 0; started; i = (i + 1) % SKN_RING) {
    pthread_mutex_lock(&r->mu);
    while (r->full[i] && !r->writer_done) pthread_cond_wait(&r->cv, &r->mu);
    bool writer_done = r->writer_done;
    pthread_mutex_unlock(&r->mu);
    if (writer_done) break; /* it failed: its error is the job's */
    ssize_t n;
    for (;;) {
      n = read(job->in_fd, r->buf[i], SKN_SPLICE_CHUNK);
      if (n >= 0) break;
      if (errno == EINTR) continue;
      if (errno == EAGAIN && (err = skn_wait(job, job->in_fd, POLLIN)) == 0) continue;
      if (err == 0) err = errno;
      break;
    }
    if (n == 0) skn_mark_end(job);
    pthread_mutex_lock(&r->mu);
    r->len[i] = n > 0 ? n : 0;
    r->full[i] = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (n <= 0) break;
  }
  if (started) {
    pthread_join(writer, NULL);
    /* The writer's failure first: a stop it raised to wake the reader is not the cause. */
    if (r->werr != 0) err = r->werr;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
  }
  for (int i = 0; i < SKN_RING; i++) free(r->buf[i]);
  free(r);
  return err;
}

static int skn_pump(skn_splice_job *job) {
  struct stat in_st, out_st;
  if (fstat(job->in_fd, &in_st) < 0 || fstat(job->out_fd, &out_st) < 0) return errno;
  bool direct = S_ISFIFO(in_st.st_mode) || S_ISFIFO(out_st.st_mode);
  /* A larger pipe on our side means fewer wake-ups (ignored when not allowed). */
  if (S_ISFIFO(in_st.st_mode)) (void)fcntl(job->in_fd, F_SETPIPE_SZ, SKN_SPLICE_CHUNK);
  if (S_ISFIFO(out_st.st_mode)) (void)fcntl(job->out_fd, F_SETPIPE_SZ, SKN_SPLICE_CHUNK);
  /*
   * A pipe's pages into a TCP socket: splice hands each page to the socket, and on loopback that
   * cost more system time (about 1.0 CPU-s per 2 GiB here) than one read and one write through a
   * 1 MiB buffer (about 0.7); the writer of the pipe also needs fresh pages for every write.
   * So that direction copies; the other (socket -> pipe, file or /dev/null) splices.
   */
  if (S_ISFIFO(in_st.st_mode) && S_ISSOCK(out_st.st_mode)) {
    int e = skn_copy(job);
    skn_mark_end(job);
    if (e == 0 && job->shutdown_out && shutdown(job->out_fd, SHUT_WR) < 0 && errno != ENOTCONN) e = errno;
    return e;
  }
  int p[2] = {-1, -1};
  if (!direct) {
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return errno;
    (void)fcntl(p[1], F_SETPIPE_SZ, SKN_SPLICE_CHUNK);
  }
  int err = 0;
  for (;;) {
    ssize_t n = skn_step(job->in_fd, direct ? job->out_fd : p[1], SKN_SPLICE_CHUNK);
    if (n > 0) {
      if (direct) job->bytes += n;
      else if ((err = skn_drain(job, p[0], job->out_fd, (size_t)n)) != 0) break;
      continue;
    }
    if (n == 0) {
      skn_mark_end(job);
      break;
    }
    if (n == -EINVAL && job->bytes == 0) {
      err = skn_copy(job);
      break;
    }
    if (n != -EAGAIN) {
      err = (int)-n;
      break;
    }
    /* Direct: either side may be the one not ready; wait for both in turn (never a spin). */
    if ((err = skn_wait(job, job->in_fd, POLLIN)) != 0) break;
    if (direct && (err = skn_wait(job, job->out_fd, POLLOUT)) != 0) break;
  }
  if (!direct) {
    close(p[0]);
    close(p[1]);
  }
  skn_mark_end(job);
  if (err == 0 && job->shutdown_out && shutdown(job->out_fd, SHUT_WR) < 0 && errno != ENOTCONN) err = errno;
  return err;
}

static void *skn_splice_thread(void *arg) {
  skn_splice_job *job = arg;
  /* Taken first: once the call below has run on the JS thread, the slot may be reused. */
  napi_threadsafe_function tsfn = job->tsfn;
  job->err = skn_pump(job);
  skn_mark_end(job); /* an early failure */
  napi_call_threadsafe_function(tsfn, job, napi_tsfn_blocking);
  napi_release_threadsafe_function(tsfn, napi_tsfn_release);
  return NULL;
}

/* On the JS thread: callback(errno, bytes, endedMs), then the slot is free again. */
static void skn_splice_done(napi_env env, napi_value js_cb, void *context, void *data) {
  (void)context;
  skn_splice_job *job = data;
  int err = job->err;
  double bytes = (double)job->bytes;
  double ended_ms = job->ended_ms;
  pthread_mutex_lock(&skn_splice_lock);
  close(job->stop_fd);
  job->stop_fd = -1;
  job->used = false;
  pthread_mutex_unlock(&skn_splice_lock);
  if (env == NULL || js_cb == NULL) return;
  napi_value argv[3], undefined;
  if (napi_create_int32(env, err, &argv[0]) != napi_ok || napi_create_double(env, bytes, &argv[1]) != napi_ok ||
      napi_create_double(env, ended_ms, &argv[2]) != napi_ok) {
    return;
  }
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, js_cb, 3, argv, NULL);
}

static napi_value skn_splice_start(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "spliceStart(inFd, outFd, shutdownOut, callback)");
    return NULL;
  }
  int32_t in_fd, out_fd;
  bool shutdown_out;
  if (napi_get_value_int32(env, argv[0], &in_fd) != napi_ok || napi_get_value_int32(env, argv[1], &out_fd) != napi_ok ||
      napi_get_value_bool(env, argv[2], &shutdown_out) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "spliceStart: fds are numbers, shutdownOut a boolean");
    return NULL;
  }
  int id = -1;
  pthread_mutex_lock(&skn_splice_lock);
  for (int i = 0; i < SKN_SPLICE_MAX_JOBS; i++) {
    if (!skn_splice_jobs[i].used) {
      id = i;
      skn_splice_jobs[i].used = true;
      break;
    }
  }
  pthread_mutex_unlock(&skn_splice_lock);
  if (id < 0) {
    napi_create_int32(env, -EMFILE, &result);
    return result;
  }
  skn_splice_job *job = &skn_splice_jobs[id];
  job->in_fd = in_fd;
  job->out_fd = out_fd;
  job->shutdown_out = shutdown_out;
  job->err = 0;
  job->bytes = 0;
  job->ended_ms = 0;
  job->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  int err = job->stop_fd < 0 ? errno : 0;
  napi_value name;
  if (err == 0) {
    napi_create_string_utf8(env, "socketkit splice", NAPI_AUTO_LENGTH, &name);
    if (napi_create_threadsafe_function(env, argv[3], NULL, name, 0, 1, NULL, NULL, NULL, skn_splice_done, &job->tsfn) != napi_ok) err = ENOMEM;
  }
  pthread_t th;
  if (err == 0) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&th, &attr, skn_splice_thread, job);
    pthread_attr_destroy(&attr);
    if (err != 0) napi_release_threadsafe_function(job->tsfn, napi_tsfn_abort);
  }
  if (err != 0) {
    pthread_mutex_lock(&skn_splice_lock);
    if (job->stop_fd >= 0) close(job->stop_fd);
    job->stop_fd = -1;
    job->used = false;
    pthread_mutex_unlock(&skn_splice_lock);
    napi_create_int32(env, -err, &result);
    return result;
  }
  napi_create_int32(env, id, &result);
  return result;
}

static napi_value skn_splice_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t id;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &id) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "spliceStop(id)");
    return NULL;
  }
  if (id >= 0 && id < SKN_SPLICE_MAX_JOBS) {
    pthread_mutex_lock(&skn_splice_lock);
    if (skn_splice_jobs[id].used && skn_splice_jobs[id].stop_fd >= 0) {
      uint64_t one = 1;
      (void)!write(skn_splice_jobs[id].stop_fd, &one, sizeof one);
    }
    pthread_mutex_unlock(&skn_splice_lock);
  }
  return NULL;
}

napi_value skn_register_splice(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "spliceStart", NAPI_AUTO_LENGTH, skn_splice_start, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "spliceStart", fn) != napi_ok ||
      napi_create_function(env, "spliceStop", NAPI_AUTO_LENGTH, skn_splice_stop, NULL, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "spliceStop", fn) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: registering splice failed");
    return NULL;
  }
  return exports;
}
