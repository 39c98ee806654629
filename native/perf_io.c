/*
 * The throughput test's paced UDP sender (socketkit perf --udp), on the libuv thread pool. The TCP
 * streams' loops are in perf_stream.c.
 *
 * Paced UDP (--udp -b RATE): datagrams evenly spaced at the target rate, on the thread pool.
 *   udpConnect(address, port, family, sndbuf) -> fd or -errno
 *     A non-blocking UDP socket of its own (AF_INET for family 4, AF_INET6 for 6), its send
 *     buffer asked to be `sndbuf` bytes, connected to address:port.
 *   udpPaced(fd, length, tag, stream, seqFrom, count, startUs, gapUs, times, callback(errno, sent))
 *     Sends datagrams seqFrom .. seqFrom+count-1 of `length` bytes, datagram k at startUs + k*gapUs
 *     (µs of CLOCK_MONOTONIC, see monoUs()): it sleeps (clock_nanosleep to PACE_WAKE_EARLY_US before
 *     the due time, this thread's timer slack set to 1 µs) when the next is far enough away,
 *     and watches the clock for the rest. Each datagram starts with socketkit's UDP header (src/perf/protocol.ts):
 *     tag u32, stream u16, flags u16 (0), sequence u64, send time float64 µs, all big-endian,
 *     the send time taken just before send(2). times[i] (a Float64Array of at least `count`) gets
 *     datagram i's send time, so the caller measures the evenness. callback(0, count) when all
 *     went; callback(errno, sent) on an error (ECONNREFUSED: the peer's port is closed).
 *   monoUs() -> CLOCK_MONOTONIC in µs (the pacer's clock).
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include "modules.h"
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <time.h>
#include <sys/socket.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

static bool int_arg(napi_env env, napi_value v, double max, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || d != d || d < 0 || d > max || d != (double)(int64_t)d) return false;
  *out = (int64_t)d;
  return true;
}

/*
 * Queues `job` on the thread pool: references `cb` into *callback and makes the async work
 * ("socketkit.NAME") in *work. On failure it undoes what it made, throws "could not queue NAME"
 * and returns false; the caller still owns `job` then.
 */
static bool queue_job(napi_env env, napi_value cb, const char* name, napi_async_execute_callback execute,
                      napi_async_complete_callback complete, void* job, napi_ref* callback, napi_async_work* work) {
  char text[96];
  napi_value resource;
  if (napi_create_reference(env, cb, 1, callback) == napi_ok) {
    snprintf(text, sizeof text, "socketkit.%s", name);
    if (napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &resource) == napi_ok &&
        napi_create_async_work(env, NULL, resource, execute, complete, job, work) == napi_ok) {
      if (napi_queue_async_work(env, *work) == napi_ok) return true;
      napi_delete_async_work(env, *work);
    }
    napi_delete_reference(env, *callback);
  }
  snprintf(text, sizeof text, "socketkit native: could not queue %s", name);
  napi_throw_error(env, "ERR_NATIVE", text);
  return false;
}

/* Sleep only when the next datagram is this far away (µs), and wake this long before it. */
#define PACE_SLEEP_US 30.0
#define PACE_WAKE_EARLY_US 60.0

static double mono_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static napi_value js_mono_us(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  if (napi_create_double(env, mono_us(), &r) != napi_ok) return NULL;
  return r;
}

static napi_value js_udp_connect(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  char addr[INET6_ADDRSTRLEN + 1];
  size_t alen = 0;
  int64_t port = 0, family = 0, sndbuf = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 || napi_get_value_string_utf8(env, argv[0], addr, sizeof addr, &alen) != napi_ok ||
      !int_arg(env, argv[1], 65535, &port) || !int_arg(env, argv[2], 6, &family) || !int_arg(env, argv[3], INT32_MAX, &sndbuf) || (family != 4 && family != 6)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udpConnect(address, port, family 4|6, sndbuf)");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  memset(&ss, 0, sizeof ss);
  int fd = -1, err = 0;
  if (family == 4) {
    struct sockaddr_in* a = (struct sockaddr_in*)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &a->sin_addr) != 1) err = EINVAL;
    sl = sizeof *a;
  } else {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1) err = EINVAL;
    sl = sizeof *a;
  }
  if (err == 0) {
    fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) err = errno;
  }
  if (err == 0) {
    int size = (int)sndbuf;
    if (size > 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size); /* the kernel's limit may stand */
    if (connect(fd, (struct sockaddr*)&ss, sl) != 0) {
      err = errno;
      close(fd);
    }
  }
  if (napi_create_int32(env, err != 0 ? -err : fd, &result) != napi_ok) return NULL;
  return result;
}

typedef struct {
  int fd;
  int64_t length;
  uint32_t tag;
  uint32_t stream;
  int64_t seq_from;
  int64_t count;
  double start_us;
  double gap_us;
  double* times;
  napi_ref times_ref;
  int64_t sent;
  int err;
  napi_ref callback;
  napi_async_work work;
} paced_job_t;

static void put_be32(unsigned char* p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void put_be_double(unsigned char* p, double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof u);
  put_be32(p, (uint32_t)(u >> 32));
  put_be32(p + 4, (uint32_t)u);
}

static __thread unsigned char* dgram_buf;
static __thread size_t dgram_cap;
static __thread bool slack_set;

static void paced_execute(napi_env env, void* data) {
  (void)env;
  paced_job_t* job = data;
  if (dgram_cap < (size_t)job->length) {
    free(dgram_buf);
    dgram_buf = calloc(1, (size_t)job->length);
    dgram_cap = dgram_buf == NULL ? 0 : (size_t)job->length;
    if (dgram_buf == NULL) {
      job->err = ENOMEM;
      return;
    }
  }
#ifdef __linux__
  if (!slack_set) {
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* sleeps end within µs of their time, not 50 µs later */
    slack_set = true;
  }
#endif
  unsigned char* b = dgram_buf;
  put_be32(b, job->tag);
  b[4] = (unsigned char)(job->stream >> 8);
  b[5] = (unsigned char)job->stream;
  b[6] = 0;
  b[7] = 0;
  for (int64_t i = 0; i < job->count; i++) {
    const int64_t seq = job->seq_from + i;
    const double due = job->start_us + (double)seq * job->gap_us;
    double now = mono_us();
    if (due - now >= PACE_SLEEP_US + PACE_WAKE_EARLY_US) {
      /* Wake a little early (a sleeping thread takes tens of µs to run again), then watch the clock. */
      const double wake = due - PACE_WAKE_EARLY_US;
      struct timespec ts;
      ts.tv_sec = (time_t)(wake / 1e6);
      ts.tv_nsec = (long)((wake - (double)ts.tv_sec * 1e6) * 1e3);
      if (ts.tv_nsec >= 1000000000L) ts.tv_nsec = 999999999L;
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
      }
    }
    /* Watch the clock. (Not sched_yield: on a busy machine each yield can hand the core to
     * another process for a whole time slice, milliseconds, and the datagrams then go late.) */
    while ((now = mono_us()) < due) {
    }
    put_be32(b + 8, (uint32_t)((uint64_t)seq >> 32));
    put_be32(b + 12, (uint32_t)seq);
    put_be_double(b + 16, now);
    for (;;) {
      ssize_t n = send(job->fd, b, (size_t)job->length, 0);
      if (n >= 0) break;
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
        struct pollfd p = {.fd = job->fd, .events = POLLOUT, .revents = 0};
        poll(&p, 1, 10);
        continue;
      }
      job->err = errno;
      return;
    }
    job->times[i] = now;
    job->sent++;
  }
}

static void paced_complete(napi_env env, napi_status status, void* data) {
  paced_job_t* job = data;
  napi_value cb, global, argv[2];
  if (status == napi_cancelled) job->err = ECANCELED;
  if (napi_get_reference_value(env, job->callback, &cb) == napi_ok && napi_get_global(env, &global) == napi_ok &&
      napi_create_int32(env, job->err, &argv[0]) == napi_ok && napi_create_double(env, (double)job->sent, &argv[1]) == napi_ok) {
    napi_call_function(env, global, cb, 2, argv, NULL);
  }
  napi_delete_reference(env, job->times_ref);
  napi_delete_reference(env, job->callback);
  napi_delete_async_work(env, job->work);
  free(job);
}

static napi_value js_udp_paced(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  napi_valuetype t;
  int64_t fd = 0, length = 0, tag = 0, stream = 0, seq_from = 0, count = 0;
  double start_us = 0, gap_us = 0;
  bool is_ta = false;
  napi_typedarray_type tat;
  size_t ta_len = 0;
  void* ta_data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 10 || napi_typeof(env, argv[9], &t) != napi_ok || t != napi_function ||
      !int_arg(env, argv[0], INT32_MAX, &fd) || !int_arg(env, argv[1], 65507, &length) || length < 24 || !int_arg(env, argv[2], 4294967295.0, &tag) ||
      !int_arg(env, argv[3], 65535, &stream) || !int_arg(env, argv[4], 9007199254740991.0, &seq_from) || !int_arg(env, argv[5], 1e9, &count) ||
      napi_get_value_double(env, argv[6], &start_us) != napi_ok || napi_get_value_double(env, argv[7], &gap_us) != napi_ok || !(gap_us > 0) ||
      napi_is_typedarray(env, argv[8], &is_ta) != napi_ok || !is_ta || napi_get_typedarray_info(env, argv[8], &tat, &ta_len, &ta_data, NULL, NULL) != napi_ok ||
      tat != napi_float64_array || ta_len < (size_t)count) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "udpPaced(fd, length 24..65507, tag, stream, seqFrom, count, startUs, gapUs, times Float64Array(count), callback)");
    return NULL;
  }
  paced_job_t* job = calloc(1, sizeof *job);
  if (job == NULL) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: out of memory");
    return NULL;
  }
  job->fd = (int)fd;
  job->length = length;
  job->tag = (uint32_t)tag;
  job->stream = (uint32_t)stream;
  job->seq_from = seq_from;
  job->count = count;
  job->start_us = start_us;
  job->gap_us = gap_us;
  job->times = ta_data;
  if (napi_create_reference(env, argv[8], 1, &job->times_ref) != napi_ok) {
    free(job);
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not queue udpPaced");
    return NULL;
  }
  if (!queue_job(env, argv[9], "udpPaced", paced_execute, paced_complete, job, &job->callback, &job->work)) {
    napi_delete_reference(env, job->times_ref);
    free(job);
  }
  return NULL;
}

napi_value skn_register_perf_io(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"udpConnect", NULL, js_udp_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpPaced", NULL, js_udp_paced, NULL, NULL, NULL, napi_enumerable, NULL},
      {"monoUs", NULL, js_mono_us, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not define the perf I/O functions");
    return NULL;
  }
  return exports;
}
