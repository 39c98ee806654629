/*
 * A TCP socket's kernel statistics (Linux TCP_INFO), for the throughput test's interval reports:
 * the smoothed round-trip time and its variation, retransmits, and the congestion window.
 *
 * JS API:
 *   tcpInfo(fd) -> { rttUs, rttVarUs, retrans, totalRetrans, lost, cwnd, sndMss,
 *                    pmtu, unacked, state } or a negative errno (not TCP, closed, not Linux)
 *     rttUs/rttVarUs: tcpi_rtt/tcpi_rttvar (µs); retrans: segments retransmitted and not yet
 *     acknowledged now (tcpi_retrans); totalRetrans: retransmitted over the connection's life
 *     (tcpi_total_retrans); lost: tcpi_lost; cwnd: tcpi_snd_cwnd (segments); sndMss: tcpi_snd_mss
 *     (bytes); pmtu: tcpi_pmtu; unacked: tcpi_unacked; state: tcpi_state.
 */
#include "modules.h"
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#ifdef __linux__
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

static bool set_u32(napi_env env, napi_value obj, const char* name, uint32_t v) {
  napi_value n;
  return napi_create_uint32(env, v, &n) == napi_ok && napi_set_named_property(env, obj, name, n) == napi_ok;
}

static napi_value js_tcp_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], result;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "tcpInfo(fd): fd must be a descriptor");
    return NULL;
  }
#ifdef __linux__
  struct tcp_info ti;
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
    if (napi_create_int32(env, -errno, &result) != napi_ok) return NULL;
    return result;
  }
  if (napi_create_object(env, &result) != napi_ok) return NULL;
  if (!set_u32(env, result, "rttUs", ti.tcpi_rtt) || !set_u32(env, result, "rttVarUs", ti.tcpi_rttvar) || !set_u32(env, result, "retrans", ti.tcpi_retrans) ||
      !set_u32(env, result, "totalRetrans", ti.tcpi_total_retrans) || !set_u32(env, result, "lost", ti.tcpi_lost) || !set_u32(env, result, "cwnd", ti.tcpi_snd_cwnd) ||
      !set_u32(env, result, "sndMss", ti.tcpi_snd_mss) || !set_u32(env, result, "pmtu", ti.tcpi_pmtu) || !set_u32(env, result, "unacked", ti.tcpi_unacked) ||
      !set_u32(env, result, "state", ti.tcpi_state)) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: tcpInfo could not build its result");
    return NULL;
  }
  return result;
#else
  if (napi_create_int32(env, -ENOSYS, &result) != napi_ok) return NULL;
  return result;
#endif
}

napi_value skn_register_tcp_info(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tcpInfo", NULL, js_tcp_info, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 1, props) != napi_ok) {
    napi_throw_error(env, "ERR_NATIVE", "socketkit native: could not define tcpInfo");
    return NULL;
  }
  return exports;
}
