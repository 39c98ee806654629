/**
 * Closing idle connections (the answer to slowloris: a client that connects and then sends
 * nothing, or trickles, or stops reading, cannot hold a connection slot forever).
 *
 * One interval timer per server sweeps the open connections, instead of a timer per socket:
 * a socket's `setTimeout` keeps a timer object per connection and re-arms it on every read and
 * write, which costs memory per connection and CPU per I/O. The sweep reads each socket's byte
 * counters (`bytesRead + bytesWritten`, no per-I/O work at all); a connection whose counters
 * have not moved for the timeout is idle. It closes between `timeoutMs` and
 * `timeoutMs + intervalMs` after its last byte. With no timeout there is no timer at all.
 *
 * Idle time is counted on the sweeper's own clock, which advances by at most two intervals per
 * sweep. When the server's event loop stalls (a long synchronous task, a paused process, a
 * machine under load), a peer's bytes wait in the kernel unread, and the first thing libuv runs
 * afterwards is the timer, before it polls for those bytes. Wall-clock time would blame the
 * peer for the server's own stall and close a connection that was talking all along.
 */
import type { Socket } from 'node:net';
import { IDLE_SWEEPS_PER_TIMEOUT, MAX_IDLE_SWEEP_MS, MIN_IDLE_SWEEP_MS } from './defaults.js';

/**
 * What a protocol knows of a connection's progress that its byte counters do not show: a file
 * transfer reads, hashes and writes files, sends with sendfile(2) past the socket's counters,
 * and waits on its disk. Read once per sweep per connection, so keep both cheap.
 */
export interface ConnectionActivity {
  /** A count that grows whenever the connection makes progress off the wire (file bytes read, hashed or written). */
  progress(socket: Socket): number;
  /**
   * True while the connection waits on local work of unknown length (a disk that is behind, an
   * fsync): no byte moves, and it is not the peer's doing, so it is not idle. Its idle time
   * counts from when it stops being busy.
   */
  busy(socket: Socket): boolean;
  /**
   * Bytes the connection moved that its socket's counters do not show (a native engine relays
   * them on a duplicate of its descriptor): counted as the socket's own, by the idle sweep and in
   * the server's statistics.
   */
  moved?(socket: Socket): { readonly read: number; readonly written: number };
}

export interface IdleSweeperOptions {
  /** A connection with no byte in or out for this long (ms) is idle. */
  readonly timeoutMs: number;
  /** Called for each idle connection with how long it was idle (ms); default: destroy it. */
  readonly onIdle?: (socket: Socket, idleMs: number) => void;
  /** Milliseconds between sweeps; default a quarter of the timeout, within 10 ms .. 5 s. */
  readonly intervalMs?: number;
  /** Progress beyond the byte counters (see {@link ConnectionActivity}); default: bytes only. */
  readonly activity?: ConnectionActivity;
}

/** Per connection: the byte count seen last and when it last changed. */
interface Mark {
  bytes: number;
  since: number;
}

/** The sweep interval for a timeout: frequent enough to be on time, rare enough to cost nothing. */
export function idleSweepInterval(timeoutMs: number): number {
  return Math.min(MAX_IDLE_SWEEP_MS, Math.max(MIN_IDLE_SWEEP_MS, Math.floor(timeoutMs / IDLE_SWEEPS_PER_TIMEOUT)));
}

/** Sweeps a live set of connections (a Listener's `connections`) and closes the idle ones. */
export class IdleSweeper {
  readonly timeoutMs: number;
  readonly intervalMs: number;
  readonly #connections: Iterable<Socket>;
  readonly #onIdle: (socket: Socket, idleMs: number) => void;
  readonly #activity: ConnectionActivity | undefined;
  /** Weak, so a closed socket's mark goes with it: no cleanup pass needed. */
  readonly #marks = new WeakMap<Socket, Mark>();
  #timer: NodeJS.Timeout | undefined;
  /** The sweeper's clock (ms): wall time, except that one sweep advances it by two intervals at most. */
  #clock = 0;
  #lastSweep: number = performance.now();
  /** Connections found idle so far. */
  closed = 0;

  constructor(connections: Iterable<Socket>, options: IdleSweeperOptions) {
    this.timeoutMs = options.timeoutMs;
    this.intervalMs = options.intervalMs ?? idleSweepInterval(options.timeoutMs);
    this.#connections = connections;
    this.#onIdle = options.onIdle ?? ((socket) => socket.destroy());
    this.#activity = options.activity;
    this.#timer = setInterval(() => this.sweep(), this.intervalMs);
    this.#timer.unref(); // the server keeps the process alive, not its sweeper
  }

  /** One pass at wall time `wallNow`: returns how many connections were found idle (and handed to `onIdle`). */
  sweep(wallNow: number = performance.now()): number {
    this.#clock += Math.min(Math.max(0, wallNow - this.#lastSweep), 2 * this.intervalMs);
    this.#lastSweep = wallNow;
    const now = this.#clock;
    const idle: Array<[Socket, number]> = [];
    const activity = this.#activity;
    for (const socket of this.#connections) {
      if (socket.destroyed) continue;
      const moved = activity?.moved?.(socket);
      const bytes = socket.bytesRead + (socket.bytesWritten ?? 0) + (activity ? activity.progress(socket) : 0) + (moved ? moved.read + moved.written : 0);
      const mark = this.#marks.get(socket);
      if (mark === undefined) this.#marks.set(socket, { bytes, since: now });
      else if (mark.bytes !== bytes || activity?.busy(socket) === true) {
        mark.bytes = bytes;
        mark.since = now;
      } else if (now - mark.since >= this.timeoutMs) idle.push([socket, now - mark.since]);
    }
    // Closing outside the loop: onIdle usually destroys, which removes the socket from the set we iterate.
    for (const [socket, ms] of idle) {
      this.closed++;
      this.#onIdle(socket, ms);
    }
    return idle.length;
  }

  /** Stops sweeping (idempotent). */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
