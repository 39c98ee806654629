/**
 * Every CLI command, loaded lazily: `socketkit --help` reads only this table.
 * A system adds its command here and in `src/cli/commands/`.
 */
import type { Command } from './command.js';

export interface CommandEntry {
  readonly name: string;
  readonly summary: string;
  readonly load: () => Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'echo-server', summary: 'run an echo server (TCP, framed, or UDP)', load: async () => (await import('./commands/echo-server.js')).default },
  { name: 'echo', summary: 'send a message or stdin to an echo server and verify the echo', load: async () => (await import('./commands/echo.js')).default },
  { name: 'ping', summary: 'round trips to an echo over UDP or TCP: loss, reordering, RTT percentiles', load: async () => (await import('./commands/ping.js')).default },
  { name: 'load', summary: 'load an echo server with many connections: round trips/s, latency percentiles', load: async () => (await import('./commands/load.js')).default },
  { name: 'broker', summary: 'relay what each client sends to all the others (ncat --broker), or a line chat with names and rooms (--chat)', load: async () => (await import('./commands/broker.js')).default },
  { name: 'report', summary: 'merge HdrHistogram latency logs (and transfer NDJSON): summary, --json, --html charts', load: async () => (await import('./commands/report.js')).default },
  { name: 'cert', summary: 'make a self-signed TLS certificate (and the fingerprint to pin) or a pre-shared key file', load: async () => (await import('./commands/cert.js')).default },
  { name: 'serve', summary: 'serve files and folders to any number of clients (verified, resumable; --raw for nc)', load: async () => (await import('./commands/serve.js')).default },
  { name: 'get', summary: 'download from a serve into a folder or file (verified, resumable; --raw for nc)', load: async () => (await import('./commands/get.js')).default },
  { name: 'send', summary: 'upload files and folders to a receive (verified, resumable)', load: async () => (await import('./commands/send.js')).default },
  { name: 'receive', summary: 'accept uploads from send clients into a folder (verified, safe paths)', load: async () => (await import('./commands/receive.js')).default },
  { name: 'connect', summary: 'talk to any TCP, TLS or Unix server: stdin to it, its replies to stdout (nc)', load: async () => (await import('./commands/connect.js')).default },
  { name: 'listen', summary: 'accept clients and relay them (nc -l): what they send to stdout, stdin to them; -k, --exec, --udp', load: async () => (await import('./commands/listen.js')).default },
  { name: 'proxy', summary: 'relay to an upstream, dump the traffic, inject latency, resets, slicing, loss (toxics)', load: async () => (await import('./commands/proxy.js')).default },
  { name: 'perf', summary: 'throughput to a perf-server (iperf3): TCP streams, reverse, both ways, paced UDP with loss and jitter', load: async () => (await import('./commands/perf.js')).default },
  { name: 'perf-server', summary: 'serve throughput tests to any number of clients at once (iperf3 -s without the one-test limit)', load: async () => (await import('./commands/perf-server.js')).default },
  { name: 'demo', summary: 'a tour of every system on loopback (what `npm start` runs)', load: async () => (await import('./commands/demo.js')).default },
];
