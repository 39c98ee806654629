/**
 * `npm run bench`: every benchmark, side by side in one run, printed as tables with ratios.
 * Benchmarks are never tests: the figures depend on the machine and its load.
 *
 * SOCKETKIT_BENCH_ONLY=codec,message runs a subset.
 */
import { benchCodec } from './codec.js';
import { benchMessage } from './message.js';
import { benchUdp } from './udp.js';
import { benchEcho } from './echo.js';
import { benchTransfer } from './transfer.js';
import { benchTls } from './tls.js';
import { benchPerf } from './perf.js';
import { benchBroker } from './broker.js';
import { benchProxy } from './proxy.js';
import { benchRelay } from './relay.js';
import { benchLoadEngine } from './load-engine.js';

type Bench = { readonly name: string; run: () => Promise<unknown> };

const BENCHES: readonly Bench[] = [
  { name: 'codec', run: () => benchCodec() },
  { name: 'message', run: () => benchMessage() },
  { name: 'udp', run: () => benchUdp() },
  { name: 'echo', run: () => benchEcho() },
  { name: 'transfer', run: () => benchTransfer() },
  { name: 'tls', run: () => benchTls() },
  { name: 'perf', run: () => benchPerf() },
  { name: 'broker', run: () => benchBroker() },
  { name: 'proxy', run: () => benchProxy() },
  { name: 'relay', run: () => benchRelay() },
  { name: 'load', run: () => benchLoadEngine() },
];

const only = process.env['SOCKETKIT_BENCH_ONLY']?.split(',').map((s) => s.trim());
const started = Date.now();
console.log(`socketkit benchmarks — node ${process.version}, ${new Date().toISOString()}`);
let failed = 0;
for (const b of BENCHES) {
  if (only && !only.includes(b.name)) continue;
  console.log(`\n== ${b.name} ==`);
  try {
    await b.run();
  } catch (err) {
    failed++;
    console.log(`${b.name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  }
}
console.log(`\nbenchmarks done in ${((Date.now() - started) / 1000).toFixed(0)} s${failed ? `, ${failed} failed` : ''}`);
process.exitCode = failed ? 1 : 0;
