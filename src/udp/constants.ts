/**
 * Limits and defaults of the UDP system, in one place.
 *
 * The maxima are what one UDP datagram can carry without IPv6 jumbograms: the IP length field
 * is 16 bits, so IPv4 leaves 65,535 - 20 (IP header) - 8 (UDP header) = 65,507 bytes, and
 * IPv6, whose payload length excludes its own header, 65,535 - 8 = 65,527 bytes.
 */

/** Largest UDP payload over IPv4, bytes. */
export const MAX_UDP_PAYLOAD_IPV4 = 65_507;
/** Largest UDP payload over IPv6 (no jumbograms), bytes. */
export const MAX_UDP_PAYLOAD_IPV6 = 65_527;

/** The largest datagram payload for an address family. */
export function maxUdpPayload(family: 4 | 6): number {
  return family === 6 ? MAX_UDP_PAYLOAD_IPV6 : MAX_UDP_PAYLOAD_IPV4;
}

/**
 * How many peers the echo server keeps counters for. Beyond this the least recently heard-from
 * peer is forgotten (and reported), so a flood of spoofed source addresses cannot grow memory.
 */
export const DEFAULT_UDP_MAX_PEERS = 4096;
/** A peer silent for this long (ms) is reported as gone and its counters released. */
export const DEFAULT_UDP_PEER_IDLE_MS = 60_000;
/**
 * Echoes waiting in the socket's send queue before the server drops new ones. UDP sockets
 * cannot be paused, so dropping (and counting) is the only way to keep memory bounded when
 * datagrams arrive faster than the kernel takes replies.
 */
export const DEFAULT_UDP_SEND_QUEUE_LIMIT = 1024;

/**
 * Per-peer events (first datagram, gone, denied) the echo server reports one by one per second;
 * beyond this, one summary per second says how many there were.
 */
export const DEFAULT_UDP_PEER_EVENTS_PER_SECOND = 20;

/** Pause between ping probes, ms (like ping(8)). */
export const DEFAULT_PING_INTERVAL_MS = 1000;
/** A probe with no reply for this long (ms) is lost; a reply after it is "late". */
export const DEFAULT_PING_TIMEOUT_MS = 2000;
/** Probe size in bytes (the UDP payload, or the bytes per round trip over TCP). */
export const DEFAULT_PING_SIZE = 64;
/** Probes sent when not interactive and no --count is given (a script must not run forever). */
export const DEFAULT_PING_COUNT = 5;
/** Upper bound on probes per run: keeps the per-probe tables and RTT list bounded. */
export const MAX_PING_COUNT = 1_000_000;
/** Largest probe over TCP (no datagram limit there; this bounds the reassembly buffer). */
export const MAX_TCP_PROBE_SIZE = 1024 * 1024;
