/**
 * TLS cost on the file transfer: throughput of the same loopback transfer in plaintext, over
 * TLS (ECDSA P-256 certificate, pinned) and over TLS-PSK, with the ratio to plaintext.
 *
 * Two kinds of transfer, each through the real transfer library (src/transfer):
 * - `transfer`: serve → get, framed, SHA-256 verified on both ends, written to disk and
 *   fsynced (what `socketkit serve` / `socketkit get` do);
 * - `raw`: the file's bytes streamed and discarded at the client (`serve --raw` to a sink), so
 *   the network path and the cipher are all that is measured.
 * The source is a sparse file (reads cost no disk I/O); the cipher's work does not depend on
 * the bytes.
 *
 * Size: SOCKETKIT_BENCH_TLS_SIZE (default 2GiB; e.g. 256MiB for a quick run). Rounds:
 * SOCKETKIT_BENCH_TLS_ROUNDS (default 2): the modes run interleaved, round after round, and the
 * best round of each counts, so a burst of load from elsewhere on the machine does not land on
 * one mode only.
 * Run: `node dist/bench/tls.js` (or as part of `npm run bench`).
 */
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { download, downloadRaw, startFileServer } from '../src/transfer/index.js';
import { generateCertificate, tlsConnectTransport, tlsListenTransport } from '../src/security/index.js';
import type { ConnectTransport } from '../src/net/connect.js';
import type { ListenTransport } from '../src/net/listen.js';
import type { Endpoint } from '../src/net/endpoint.js';
import { parseSize } from '../src/cli/values.js';

export type TlsBenchMode = 'plain' | 'tls' | 'psk';

export interface TlsBenchRow {
  readonly kind: 'transfer' | 'raw';
  readonly mode: TlsBenchMode;
  readonly bytes: number;
  readonly seconds: number;
  readonly mibPerSecond: number;
  /** This mode's throughput divided by plaintext's, for the same kind. */
  readonly ratioToPlain: number;
}

export interface TlsBenchOptions {
  /** Bytes per transfer. Default: SOCKETKIT_BENCH_TLS_SIZE, else 2 GiB. */
  readonly bytes?: number;
  /** Runs of each mode; the best counts. Default: SOCKETKIT_BENCH_TLS_ROUNDS, else 2. */
  readonly rounds?: number;
  readonly log?: (line: string) => void;
}

interface Transports {
  readonly listen?: ListenTransport;
  readonly connect?: ConnectTransport;
}

/** A sink that drops what it is given (the client side of a raw run). */
function discard(): Writable {
  return new Writable({
    highWaterMark: 1024 * 1024,
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

async function one(kind: 'transfer' | 'raw', mode: TlsBenchMode, file: string, dir: string, bytes: number, t: Transports): Promise<Omit<TlsBenchRow, 'ratioToPlain'>> {
  const ep: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };
  const server = await startFileServer(ep, { paths: [file], raw: kind === 'raw', ...(t.listen ? { transport: t.listen } : {}) });
  try {
    const t0 = performance.now();
    if (kind === 'raw') {
      const r = await downloadRaw(server.endpoint, discard(), t.connect ? { transport: t.connect } : {});
      if (r.bytes !== bytes) throw new Error(`raw ${mode}: got ${r.bytes} of ${bytes} bytes`);
    } else {
      const out = join(dir, `out-${mode}`);
      const s = await download(server.endpoint, { dir: out, ...(t.connect ? { transport: t.connect } : {}) });
      if (s.bytes !== bytes || s.failures.length > 0) throw new Error(`transfer ${mode}: ${s.bytes} of ${bytes} bytes, ${s.failures.length} failure(s)`);
      await rm(out, { recursive: true, force: true });
    }
    const seconds = (performance.now() - t0) / 1000;
    return { kind, mode, bytes, seconds, mibPerSecond: bytes / seconds / 1024 / 1024 };
  } finally {
    await server.close();
  }
}

/** Runs the TLS benchmark and prints a table; resolves with the rows. */
export async function benchTls(options: TlsBenchOptions = {}): Promise<{ name: 'tls'; rows: TlsBenchRow[] }> {
  const bytes = options.bytes ?? parseSize('SOCKETKIT_BENCH_TLS_SIZE', process.env['SOCKETKIT_BENCH_TLS_SIZE'] ?? '2GiB');
  const rounds = options.rounds ?? Math.max(1, Number(process.env['SOCKETKIT_BENCH_TLS_ROUNDS'] ?? '2') || 1);
  const log = options.log ?? ((line: string) => console.log(line));
  const dir = await mkdtemp(join(tmpdir(), 'socketkit-bench-tls-'));
  const rows: TlsBenchRow[] = [];
  try {
    const file = join(dir, 'payload.bin');
    const fh = await open(file, 'w');
    await fh.truncate(bytes); // sparse: reading it costs no disk I/O
    await fh.close();
    const cert = await generateCertificate();
    const psk = { identity: 'bench', key: Buffer.alloc(32, 0x5a) };
    // New transports per run, so no session state is shared between runs.
    const modes: Record<TlsBenchMode, () => Transports> = {
      plain: () => ({}),
      tls: () => ({ listen: tlsListenTransport({ cert: cert.cert, key: cert.key }), connect: tlsConnectTransport({ pin: cert.fingerprint }) }),
      psk: () => ({ listen: tlsListenTransport({ psk }), connect: tlsConnectTransport({ psk }) }),
    };
    for (const kind of ['raw', 'transfer'] as const) {
      const best = new Map<TlsBenchMode, Omit<TlsBenchRow, 'ratioToPlain'>>();
      for (let round = 0; round < rounds; round++) {
        for (const mode of ['plain', 'tls', 'psk'] as const) {
          const r = await one(kind, mode, file, dir, bytes, modes[mode]());
          if ((best.get(mode)?.mibPerSecond ?? 0) < r.mibPerSecond) best.set(mode, r);
        }
      }
      const measured = [...best.values()];
      const plain = best.get('plain')!.mibPerSecond;
      for (const m of measured) rows.push({ ...m, ratioToPlain: m.mibPerSecond / plain });
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  log(`file transfer of ${(bytes / 1024 / 1024).toFixed(0)} MiB over loopback, best of ${rounds}: plaintext vs TLS 1.3 (ECDSA P-256 certificate, TLS_AES_256_GCM_SHA384) vs TLS-PSK (TLS 1.3, TLS_AES_128_GCM_SHA256)`);
  log(`${'kind'.padEnd(10)}${'mode'.padEnd(7)}${'seconds'.padStart(9)}${'MiB/s'.padStart(9)}${'vs plain'.padStart(10)}`);
  for (const r of rows) {
    log(`${r.kind.padEnd(10)}${r.mode.padEnd(7)}${r.seconds.toFixed(2).padStart(9)}${r.mibPerSecond.toFixed(0).padStart(9)}${`${r.ratioToPlain.toFixed(2)}x`.padStart(10)}`);
  }
  return { name: 'tls', rows };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await benchTls();
}
