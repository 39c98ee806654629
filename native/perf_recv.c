/*
 * The throughput test's TCP receiver (socketkit perf, perf-server): reads a socket on the libuv
 * thread pool into one reused buffer per pool thread, counting and dropping the bytes.
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
 */
#define _GNU_SOURCE
#include "modules.h"
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <sys/socket.h>

#define RECV_CHUNK (256 * 1024)

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

napi_value skn_register_perf_recv(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"recvDrop", NULL, js_recv_drop, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not define recvDrop");
    return NULL;
  }
  return exports;
}
