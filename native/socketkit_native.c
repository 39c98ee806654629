/*
 * socketkit's native helper (Linux): zero-copy file-to-socket transfer with sendfile(2), and
 * the TCP state of a socket, which tells a peer's reset from its clean end.
 *
 * Node 20 has no sendfile for sockets, so a raw transfer otherwise costs two copies on the
 * sending core (file -> user buffer -> socket). With sendfile the kernel moves page-cache pages
 * into the socket itself.
 *
 * JS API (all integers are JS numbers; byte counts stay below 2^53):
 *   dup(fd) -> fd2                  a private descriptor for the socket (see below)
 *   close(fd2)
 *   tcpState(fd) -> the kernel's TCP state (tcpi_state: 7 = CLOSE, 8 = CLOSE_WAIT) or -errno
 *   socketError(fd) -> the socket's pending error (SO_ERROR: ECONNRESET after a reset), 0 for
 *     none, or -errno; reading it clears it
 *   sendfile(out, in, offset, length, maxBytes, waitMs, callback(errno, bytes))
 *     On the libuv thread pool: calls sendfile(out, in, offset+sent, ...) until `length` bytes
 *     are sent, `maxBytes` were sent in this call, `waitMs` have passed since the call began
 *     with the socket full (it is polled for room until then, so a fast reader never waits for
 *     a round trip through JS, and no call holds a pool thread longer than that while the
 *     socket is full), the file ends, or an error.
 *     callback(0, n) on success or a full socket (n may be 0); callback(errno, n) on an error;
 *     fewer bytes than asked with errno 0 means the socket stayed full, or the file ended
 *     (the caller tells the two apart by the file's size).
 *
 * Why dup: the work runs on another thread while JS keeps running. If Node closed the socket
 * meanwhile (a peer reset), its descriptor number could be reused by an unrelated open() and
 * we would write into it. A private duplicate keeps the socket itself alive until we close it;
 * a dead peer then shows up as EPIPE or ECONNRESET here.
 *
 * Why tcpState: libuv reports a peer's reset that arrives behind data as a plain end of stream
 * (after a short read, POLLHUP is taken for EOF without reading the pending ECONNRESET). After
 * a clean end our socket is in CLOSE_WAIT; after a reset it is CLOSED.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#define NAPI_VERSION 8
#include <node_api.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#endif

#define CHECK(call)                                                                  \
  do {                                                                               \
    if ((call) != napi_ok) {                                                         \
      napi_throw_error(env, "ERR_NATIVE", "socketkit native: " #call " failed");     \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

typedef struct {
  int out_fd;
  int in_fd;
  int64_t offset;
  int64_t length;
  int64_t max_bytes;
  int wait_ms;
  int64_t sent;
  int err;
  napi_ref callback;
  napi_async_work work;
} job_t;

_Static_assert(sizeof(off_t) == 8, "sendfile offsets must be 64-bit");

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void execute(napi_env env, void* data) {
  (void)env;
  job_t* job = data;
#ifdef __linux__
  const int64_t deadline = now_ms() + job->wait_ms;
  while (job->sent < job->length && job->sent < job->max_bytes) {
    off_t off = (off_t)(job->offset + job->sent);
    int64_t want = job->length - job->sent;
    if (want > job->max_bytes - job->sent) want = job->max_bytes - job->sent;
    if (want > 0x7ffff000) want = 0x7ffff000;
    ssize_t n = sendfile(job->out_fd, job->in_fd, &off, (size_t)want);
    if (n > 0) {
      job->sent += n;
    } else if (n == 0) {
      break; /* end of file: the caller compares with the size it expected */
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      /* Socket full: wait for room until the call's deadline; past it the caller waits, off the pool. */
      int64_t left = deadline - now_ms();
      if (left <= 0) break;
      struct pollfd p = {.fd = job->out_fd, .events = POLLOUT, .revents = 0};
      int r = poll(&p, 1, (int)left);
      if (r > 0 || (r < 0 && errno == EINTR)) continue; /* room, or an error sendfile will report */
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

static void complete(napi_env env, napi_status status, void* data) {
  job_t* job = data;
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

static int64_t arg_int(napi_env env, napi_value v, int* ok) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > 9007199254740991.0 || d != (double)(int64_t)d) {
    *ok = 0;
    return 0;
  }
  return (int64_t)d;
}

static napi_value js_sendfile(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype t;
  if (argc < 7 || napi_typeof(env, argv[6], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sendfile(out, in, offset, length, maxBytes, waitMs, callback)");
    return NULL;
  }
  int ok = 1;
  int64_t out_fd = arg_int(env, argv[0], &ok), in_fd = arg_int(env, argv[1], &ok);
  int64_t offset = arg_int(env, argv[2], &ok), length = arg_int(env, argv[3], &ok), max_bytes = arg_int(env, argv[4], &ok);
  int64_t wait_ms = arg_int(env, argv[5], &ok);
  if (!ok || out_fd > INT32_MAX || in_fd > INT32_MAX || wait_ms > 60000) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "sendfile: descriptors and sizes must be non-negative integers");
    return NULL;
  }
  job_t* job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: out of memory");
    return NULL;
  }
  job->out_fd = (int)out_fd;
  job->in_fd = (int)in_fd;
  job->offset = offset;
  job->length = length;
  job->max_bytes = max_bytes;
  job->wait_ms = (int)wait_ms;
  napi_value name;
  if (napi_create_reference(env, argv[6], 1, &job->callback) != napi_ok) goto fail_job;
  if (napi_create_string_utf8(env, "socketkit.sendfile", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, job, &job->work) != napi_ok) {
    goto fail_ref;
  }
  if (napi_queue_async_work(env, job->work) == napi_ok) return NULL;
  napi_delete_async_work(env, job->work);
fail_ref:
  napi_delete_reference(env, job->callback);
fail_job:
  free(job);
  napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not queue sendfile");
  return NULL;
}

/* The one descriptor argument of dup, close, tcpState and socketError; false (with a JS
 * TypeError thrown, unless `quiet`) when it is missing or negative. */
static bool fd_arg(napi_env env, napi_callback_info info, const char* usage, bool quiet, int32_t* fd) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) == napi_ok && argc >= 1 && napi_get_value_int32(env, argv[0], fd) == napi_ok && *fd >= 0) {
    return true;
  }
  if (!quiet) napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", usage);
  return false;
}

static napi_value js_dup(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t fd;
  if (!fd_arg(env, info, "dup(fd): fd must be a descriptor", false, &fd)) return NULL;
  int fd2 = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  CHECK(napi_create_int32(env, fd2 < 0 ? -errno : fd2, &result));
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (fd_arg(env, info, NULL, true, &fd)) close(fd);
  return NULL;
}

static napi_value js_tcp_state(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t fd;
  if (!fd_arg(env, info, "tcpState(fd): fd must be a descriptor", false, &fd)) return NULL;
  int state;
#ifdef __linux__
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  state = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_state : -errno;
#else
  state = -ENOSYS;
#endif
  CHECK(napi_create_int32(env, state, &result));
  return result;
}

static napi_value js_socket_error(napi_env env, napi_callback_info info) {
  napi_value result;
  int32_t fd;
  if (!fd_arg(env, info, "socketError(fd): fd must be a descriptor", false, &fd)) return NULL;
  int err = 0;
  socklen_t len = sizeof err;
  int value = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : -errno;
  CHECK(napi_create_int32(env, value, &result));
  return result;
}

/*
 * Each further native module (a C file in native/, all compiled into this one addon by binding.gyp)
 * exports one registration function, declared in native/modules.h and called below, that
 * defines its own JS functions on `exports`. A new module is one file plus one line here.
 */
#include "modules.h"

/*
 * The addon stays mapped for the life of the process. Node unloads an addon (dlclose) when the
 * last environment that loaded it goes away, a terminated Worker for one; a thread of ours that
 * is still winding down (a perf stream's, an engine's) would then run unmapped code. Opening
 * ourselves once more with RTLD_NODELETE makes every dlclose leave the code in place.
 */
static void pin_addon(void) {
  Dl_info self;
  /* Each environment's load adds a reference that is never closed; with RTLD_NODELETE even the last dlclose keeps the code. */
  if (dladdr((void*)pin_addon, &self) != 0 && self.dli_fname != NULL) (void)dlopen(self.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static napi_value init(napi_env env, napi_value exports) {
  pin_addon();
  napi_property_descriptor props[] = {
      {"sendfile", NULL, js_sendfile, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dup", NULL, js_dup, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tcpState", NULL, js_tcp_state, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketError", NULL, js_socket_error, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  for (size_t i = 0; i < sizeof skn_modules / sizeof skn_modules[0]; i++) {
    if (skn_modules[i] != NULL && skn_modules[i](env, exports) == NULL) return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
