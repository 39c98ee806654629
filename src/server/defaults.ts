/** Defaults of the shared server machinery, in one place. */

/** The idle sweep runs this many times per idle timeout (so a connection goes at most 1/4 late). */
export const IDLE_SWEEPS_PER_TIMEOUT = 4;
/** The idle sweep never runs more often than this, milliseconds. */
export const MIN_IDLE_SWEEP_MS = 10;
/** The idle sweep never runs less often than this, milliseconds (long timeouts still close on time). */
export const MAX_IDLE_SWEEP_MS = 5_000;
/** How long a cluster primary waits for a worker to answer a stats request, milliseconds. */
export const DEFAULT_WORKER_STATS_TIMEOUT_MS = 1_000;
/** Beyond its grace period, how long a stopping cluster waits for a worker before killing it, milliseconds. */
export const DEFAULT_WORKER_EXIT_MARGIN_MS = 5_000;
/** A worker that dies unexpectedly is replaced after this delay, milliseconds (no busy restart loop). */
export const DEFAULT_WORKER_RESTART_DELAY_MS = 1_000;
/** Connections lost to accept failures (out of descriptors) are reported at most once per this, milliseconds. */
export const ACCEPT_ERROR_REPORT_MS = 1_000;
/**
 * Default memory budget of a server process for bytes it buffers for its peers (the framed echo's
 * partial messages and replies waiting for a slow reader): 256 MiB.
 */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024;
