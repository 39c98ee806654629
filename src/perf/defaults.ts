/** Defaults of throughput tests (`socketkit perf`), written once. */

/** How long a test sends, ms (iperf3's default too). */
export const DEFAULT_PERF_DURATION_MS = 10_000;
/** Bytes per write on TCP (iperf3's default). */
export const DEFAULT_PERF_TCP_LENGTH = 128 * 1024;
/** Bytes per UDP datagram, header included: fits a 1500-byte Ethernet MTU over IPv4 and IPv6. */
export const DEFAULT_PERF_UDP_LENGTH = 1400;
/** UDP target rate per stream, bits/s (iperf3's default). */
export const DEFAULT_PERF_UDP_RATE = 1_000_000;
/** Port of `perf-server` (iperf3's is 5201; this one is socketkit's own). */
export const DEFAULT_PERF_PORT = 9801;
