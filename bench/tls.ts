/**
 * TLS cost on the file transfer: throughput of the same loopback transfer in plaintext, over
 * TLS (ECDSA P-256 certificate, pinned) and over TLS-PSK, with the ratio to plaintext.
 *
 * The server is the real `socketkit serve` in its own process (as on a real network, each end
 * has its own thread to encrypt or decrypt); the client is the transfer library in this one.
 * Two kinds of transfer:
 * - `transfer`: serve → get, framed, SHA-256 verified on both ends, written to disk and
 *   fsynced (what `socketkit serve` / `socketkit get` do);
 * - `raw`: `serve --raw`, the bytes discarded at the client, so the network path and the
 *   cipher are all that is measured.
 * The source is a sparse file (reads cost no disk I/O); the cipher's work does not depend on
 * the bytes.
 *
 * Size: SOCKETKIT_BENCH_TLS_SIZE (default 2GiB; e.g. 256MiB for a quick run). Rounds:
 * SOCKETKIT_BENCH_TLS_ROUNDS (default 2): the modes run interleaved, round after round, and the
 * best round of each counts, so a burst of load from elsewhere on the machine does not land on
 * one mode only.
 * Run: `node dist/bench/tls.js` (or as part of `npm run bench`).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { download, downloadRaw } from '../src/transfer/index.js';
import { formatPsk, generateCertificate, tlsConnectTransport } from '../src/security/index.js';
import type { ConnectTransport } from '../src/net/connect.js';
import { parseEndpoint, type Endpoint } from '../src/net/endpoint.js';
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
  /** The server's security options. */
  readonly serverArgs: readonly string[];
  readonly connect?: ConnectTransport;
}

/** bin/socketkit.js, from dist/bench/. */
const BIN = fileURLToPath(new URL('../../bin/socketkit.js', import.meta.url));

/** Starts `socketkit serve` in a child process; resolves with where it listens and how to stop it. */
async function startServe(args: readonly string[]): Promise<{ endpoint: Endpoint; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args, '--listen', '127.0.0.1:0', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const lines = createInterface({ input: child.stdout });
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}`)), 15_000);
    lines.on('line', (line) => {
      const e = JSON.parse(line) as { event?: string; address?: string };
      if (e.event === 'listening' && e.address) {
        clearTimeout(timer);
        resolve(e.address);
      }
    });
    void exited.then(() => reject(new Error(`serve exited: ${stderr}`)));
  });
  return {
    endpoint: parseEndpoint(address, { defaultHost: '127.0.0.1' }),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
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
  const server = await startServe([file, ...(kind === 'raw' ? ['--raw'] : []), ...t.serverArgs]);
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
    await server.stop();
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
    const [certFile, keyFile, pskFile] = [join(dir, 'cert.pem'), join(dir, 'key.pem'), join(dir, 'bench.psk')];
    await writeFile(certFile, cert.cert);
    await writeFile(keyFile, cert.key, { mode: 0o600 });
    await writeFile(pskFile, formatPsk(psk), { mode: 0o600 });
    // A new client transport per run, so no session state is shared between runs.
    const modes: Record<TlsBenchMode, () => Transports> = {
      plain: () => ({ serverArgs: [] }),
      tls: () => ({ serverArgs: ['--cert', certFile, '--key', keyFile], connect: tlsConnectTransport({ pin: cert.fingerprint }) }),
      psk: () => ({ serverArgs: ['--psk-file', pskFile], connect: tlsConnectTransport({ psk }) }),
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
