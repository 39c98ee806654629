/*
 * The throughput test's TCP I/O loops (socketkit perf, perf-server), on the libuv thread pool.
 *
 * Receiving: reads a socket into one reused buffer per pool thread, counting and dropping the bytes.
 *
 * Node's own reads allocate a fresh 64 KiB buffer per read and hand each to JS, so a receiving
 * core spends about three times iperf3's CPU per byte. This does what iperf3's receiver does:
 * read(2) into the same buffer over and over, and nothing else. The bytes are copied once, by the
 * kernel, like iperf3's (no MSG_TRUNC: the test measures what a reader pays).
 *
 * JS API:
 *   recvDrop(fd, maxBytes, waitMs, callback(errno, bytes, eof))
 *     On the thread pool: recv(2) from the non-blocking socket `fd` until `maxBytes` were read,
 *     the peer's end of stream (eof = true), an error (errno), or `waitMs` have passed since the
 *     call began (the socket is polled for data until then, so a busy stream never waits for a
 *     round trip through JS, and no call holds a pool thread longer than that).
 *     `fd` must be a private duplicate (see dup in socketkit_native.c) and the socket must not
 *     be read by libuv meanwhile (the caller pauses it).
 *
 * Sending (-Z): sendfile(2) from a small file of zeros, over and over, as iperf3 -Z does.
 *   sendZeros(out, file, fileSize, maxBytes, waitMs, callback(errno, bytes))
 *     On the thread pool: sendfile(out, file, ...) from offset 0 to fileSize and again, until
 *     `maxBytes` were sent, an error, or the socket stayed full `waitMs` after the call began
 *     (polled for room until then). The sendfile helper in socketkit_native.c sends one range of a
 *     file and stops at its end; a test sends the same pages for seconds, so here the loop stays
 *     in C and a call hands back only for progress reports.
 *     `out` must be a private duplicate of the socket, with nothing queued in Node's write queue.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include "modules.h"
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif

#define RECV_CHUNK (128 * 1024)

typedef struct {
  int fd;
  int64_t max_bytes;
  int wait_ms;
  int64_t got;
  int err;
  bool eof;
  napi_ref callback;
  napi_async_work work;
} recv_job_t;

/* One scratch buffer per pool thread, made on first use and kept (pool threads live as long as the process). */
static __thread char* scratch;

static int64_t recv_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void recv_execute(napi_env env, void* data) {
  (void)env;
  recv_job_t* job = data;
  if (scratch == NULL) scratch = malloc(RECV_CHUNK);
  if (scratch == NULL) {
    job->err = ENOMEM;
    return;
  }
  const int64_t deadline = recv_now_ms() + job->wait_ms;
  while (job->got < job->max_bytes) {
    size_t want = RECV_CHUNK;
    if ((int64_t)want > job->max_bytes - job->got) want = (size_t)(job->max_bytes - job->got);
    ssize_t n = recv(job->fd, scratch, want, MSG_DONTWAIT);
    if (n > 0) {
      job->got += n;
    } else if (n == 0) {
      job->eof = true;
      break;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int64_t left = deadline - recv_now_ms();
      if (left <= 0) break;
      struct pollfd p = {.fd = job->fd, .events = POLLIN | POLLRDHUP, .revents = 0};
      int r = poll(&p, 1, (int)left);
      if (r > 0 || (r < 0 && errno == EINTR)) continue; /* data, an end or an error: recv says which */
      break;
    } else {
      job->err = errno;
      break;
    }
  }
}

static void recv_complete(napi_env env, napi_status status, void* data) {
  recv_job_t* job = data;
  napi_value cb, global, argv[3];
  if (status == napi_cancelled) job->err = ECANCELED;
  if (napi_get_reference_value(env, job->callback, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, job->err, &argv[0]) == napi_ok && napi_create_double(env, (double)job->got, &argv[1]) == napi_ok &&
      napi_get_boolean(env, job->eof, &argv[2]) == napi_ok) {
    napi_call_function(env, global, cb, 3, argv, NULL);
  }
  napi_delete_reference(env, job->callback);
  napi_delete_async_work(env, job->work);
  free(job);
}

static bool recv_int_arg(napi_env env, napi_value v, double max, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > max || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

static napi_value js_recv_drop(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_valuetype t;
  int64_t fd = 0, max_bytes = 0, wait_ms = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || napi_typeof(env, argv[3], &t) != napi_ok || t != napi_function ||
      !recv_int_arg(env, argv[0], INT32_MAX, &fd) || !recv_int_arg(env, argv[1], 9007199254740991.0, &max_bytes) || !recv_int_arg(env, argv[2], 60000, &wait_ms)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "recvDrop(fd, maxBytes, waitMs, callback): non-negative integers and a function");
    return NULL;
  }
  recv_job_t* job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: out of memory");
    return NULL;
  }
  job->fd = (int)fd;
  job->max_bytes = max_bytes;
  job->wait_ms = (int)wait_ms;
  napi_value name;
  if (napi_create_reference(env, argv[3], 1, &job->callback) != napi_ok) goto fail_job;
  if (napi_create_string_utf8(env, "socketkit.recvDrop", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, recv_execute, recv_complete, job, &job->work) != napi_ok) {
    goto fail_ref;
  }
  if (napi_queue_async_work(env, job->work) == napi_ok) return NULL;
  napi_delete_async_work(env, job->work);
fail_ref:
  napi_delete_reference(env, job->callback);
fail_job:
  free(job);
  napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not queue recvDrop");
  return NULL;
}

typedef struct {
  int out_fd;
  int in_fd;
  int64_t file_size;
  int64_t max_bytes;
  int wait_ms;
  int64_t sent;
  int err;
  napi_ref callback;
  napi_async_work work;
} zeros_job_t;

static void zeros_execute(napi_env env, void* data) {
  (void)env;
  zeros_job_t* job = data;
#ifdef __linux__
  const int64_t deadline = recv_now_ms() + job->wait_ms;
  off_t off = 0;
  while (job->sent < job->max_bytes) {
    if (off >= job->file_size) off = 0;
    int64_t want = job->file_size - off;
    if (want > job->max_bytes - job->sent) want = job->max_bytes - job->sent;
    ssize_t n = sendfile(job->out_fd, job->in_fd, &off, (size_t)want);
    if (n > 0) {
      job->sent += n;
    } else if (n == 0) {
      job->err = EIO; /* the file is shorter than it was said to be */
      break;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int64_t left = deadline - recv_now_ms();
      if (left <= 0) break;
      struct pollfd p = {.fd = job->out_fd, .events = POLLOUT, .revents = 0};
      int r = poll(&p, 1, (int)left);
      if (r > 0 || (r < 0 && errno == EINTR)) continue;
      break;
    } else {
      job->err = errno;
      break;
    }
  }
#else
  job->err = ENOSYS;
#endif
}

static void zeros_complete(napi_env env, napi_status status, void* data) {
  zeros_job_t* job = data;
  napi_value cb, global, argv[2];
  if (status == napi_cancelled) job->err = ECANCELED;
  if (napi_get_reference_value(env, job->callback, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, job->err, &argv[0]) == napi_ok && napi_create_double(env, (double)job->sent, &argv[1]) == napi_ok) {
    napi_call_function(env, global, cb, 2, argv, NULL);
  }
  napi_delete_reference(env, job->callback);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value js_send_zeros(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_valuetype t;
  int64_t out_fd = 0, in_fd = 0, file_size = 0, max_bytes = 0, wait_ms = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 6 || napi_typeof(env, argv[5], &t) != napi_ok || t != napi_function ||
      !recv_int_arg(env, argv[0], INT32_MAX, &out_fd) || !recv_int_arg(env, argv[1], INT32_MAX, &in_fd) || !recv_int_arg(env, argv[2], 0x7ffff000, &file_size) ||
      file_size == 0 || !recv_int_arg(env, argv[3], 9007199254740991.0, &max_bytes) || !recv_int_arg(env, argv[4], 60000, &wait_ms)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sendZeros(out, file, fileSize, maxBytes, waitMs, callback): non-negative integers (fileSize above 0) and a function");
    return NULL;
  }
  zeros_job_t* job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: out of memory");
    return NULL;
  }
  job->out_fd = (int)out_fd;
  job->in_fd = (int)in_fd;
  job->file_size = file_size;
  job->max_bytes = max_bytes;
  job->wait_ms = (int)wait_ms;
  napi_value name;
  if (napi_create_reference(env, argv[5], 1, &job->callback) != napi_ok) goto fail_job;
  if (napi_create_string_utf8(env, "socketkit.sendZeros", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, zeros_execute, zeros_complete, job, &job->work) != napi_ok) {
    goto fail_ref;
  }
  if (napi_queue_async_work(env, job->work) == napi_ok) return NULL;
  napi_delete_async_work(env, job->work);
fail_ref:
  napi_delete_reference(env, job->callback);
fail_job:
  free(job);
  napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not queue sendZeros");
  return NULL;
}

napi_value skn_register_perf_io(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"recvDrop", NULL, js_recv_drop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendZeros", NULL, js_send_zeros, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 2, props) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not define recvDrop and sendZeros");
    return NULL;
  }
  return exports;
}
