// Every toxic stage (src/proxy/toxics/*), fed chunks directly on a virtual clock: what comes
// out, when, in which order, and what it does to the connection; the attribute edge cases (0,
// huge, missing); and the parsing of `TYPE:ATTR=VALUE,...` and toxiproxy's JSON shape.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Chain, parseToxic, seededRandom, toxicConfig, toxicStage, type StageContext, type StageOutput } from '../src/proxy/index.js';

/** A virtual clock: timers fire only when the test advances time. */
class FakeClock {
  t = 0;
  readonly timers = new Set<{ at: number; fn: () => void }>();
  advance(ms: number): void {
    const until = this.t + ms;
    for (;;) {
      let next: { at: number; fn: () => void } | undefined;
      for (const x of this.timers) if (x.at <= until && (!next || x.at < next.at)) next = x;
      if (!next) break;
      this.timers.delete(next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = until;
  }
}

interface Recorded {
  readonly out: { at: number; what: 'data' | 'end' | 'close' | 'reset'; data?: Buffer }[];
  readonly sink: StageOutput;
  readonly ctx: StageContext;
  readonly clock: FakeClock;
  data(): Buffer;
  times(): number[];
}

function record(options: { datagram?: boolean; seed?: number } = {}): Recorded {
  const clock = new FakeClock();
  const out: Recorded['out'] = [];
  const ctx: StageContext = {
    now: () => clock.t,
    random: seededRandom(options.seed ?? 1),
    setTimer: (fn, ms) => {
      const x = { at: clock.t + ms, fn };
      clock.timers.add(x);
      return () => clock.timers.delete(x);
    },
    datagram: options.datagram ?? false,
  };
  const sink: StageOutput = {
    push: (c) => out.push({ at: clock.t, what: 'data', data: Buffer.from(c) }),
    end: () => out.push({ at: clock.t, what: 'end' }),
    close: () => out.push({ at: clock.t, what: 'close' }),
    reset: () => out.push({ at: clock.t, what: 'reset' }),
  };
  return {
    out,
    sink,
    ctx,
    clock,
    data: () => Buffer.concat(out.filter((o) => o.data).map((o) => o.data!)),
    times: () => out.filter((o) => o.what === 'data').map((o) => o.at),
  };
}

/** A stage of `spec` (`TYPE:ATTR=...`) on a recorded output. */
function stageOf(spec: string, r: Recorded, udp = false): Chain {
  const chain = new Chain([toxicStage(parseToxic(spec, udp))], r.sink, r.ctx);
  chain.start();
  return chain;
}

const b = (s: string): Buffer => Buffer.from(s);

describe('latency', () => {
  it('delays every chunk by latency ms from its arrival, and the end behind the last chunk', () => {
    const r = record();
    const s = stageOf('latency:latency=100', r);
    s.write(b('a'));
    r.clock.advance(30);
    s.write(b('b'));
    s.end();
    assert.equal(s.buffered, 2);
    r.clock.advance(69);
    assert.equal(r.out.length, 0);
    r.clock.advance(1);
    assert.deepEqual(r.times(), [100]);
    r.clock.advance(30);
    assert.deepEqual(r.times(), [100, 130]);
    assert.equal(r.out.at(-1)!.what, 'end');
    assert.equal(r.data().toString(), 'ab');
    assert.equal(s.buffered, 0);
  });

  it('jitter: every delay within latency ± jitter, order kept', () => {
    const r = record({ seed: 7 });
    const s = stageOf('latency:latency=50,jitter=20', r);
    // One chunk every 100 ms: each one's delay is its own draw.
    for (let i = 0; i < 200; i++) {
      s.write(b(String.fromCharCode(65 + (i % 26))));
      r.clock.advance(100);
    }
    const delays = r.times().map((t, i) => t - i * 100);
    assert.equal(delays.length, 200);
    for (const d of delays) assert.ok(d >= 30 && d <= 70, `delay ${d}`);
    assert.ok(Math.min(...delays) < 35 && Math.max(...delays) > 65, 'the delays cover the range');
    // Chunks closer together than the jitter: never reordered.
    const r2 = record({ seed: 9 });
    const s2 = stageOf('latency:latency=50,jitter=20', r2);
    for (let i = 0; i < 100; i++) s2.write(Buffer.from([i]));
    r2.clock.advance(100);
    assert.deepEqual([...r2.data()], [...Array(100).keys()]);
  });

  it('0 (the default) passes chunks at once', () => {
    const r = record();
    const s = stageOf('latency', r);
    s.write(b('x'));
    assert.equal(r.data().toString(), 'x');
  });
});

describe('bandwidth', () => {
  it('rate KB/s: 50,000 bytes at 100 KB/s take 500 ms, sent in pieces of 100 ms', () => {
    const r = record();
    const s = stageOf('bandwidth:rate=100', r);
    s.write(Buffer.alloc(50_000, 1));
    r.clock.advance(1000);
    assert.deepEqual(r.times(), [0, 100, 200, 300, 400]);
    assert.equal(r.data().length, 50_000);
  });

  it('a datagram is never cut: it waits its whole time', () => {
    const r = record({ datagram: true });
    const s = stageOf('bandwidth:rate=1', r, true);
    s.write(Buffer.alloc(500));
    s.write(Buffer.alloc(500));
    r.clock.advance(2000);
    assert.deepEqual(r.times(), [0, 500]);
  });

  it('0 = unlimited', () => {
    const r = record();
    const s = stageOf('bandwidth:rate=0', r);
    s.write(Buffer.alloc(1_000_000));
    assert.equal(r.data().length, 1_000_000);
  });
});

describe('slow_close', () => {
  it('delays the FIN by delay ms, not the data', () => {
    const r = record();
    const s = stageOf('slow_close:delay=500', r);
    s.write(b('data'));
    s.end();
    assert.equal(r.out.length, 1);
    r.clock.advance(499);
    assert.equal(r.out.length, 1);
    r.clock.advance(1);
    assert.deepEqual(r.out.map((o) => [o.what, o.at]), [['data', 0], ['end', 500]]);
  });
});

describe('timeout', () => {
  it('drops everything and closes the connection after timeout ms', () => {
    const r = record();
    const s = stageOf('timeout:timeout=1000', r);
    s.write(b('lost'));
    r.clock.advance(999);
    assert.equal(r.out.length, 0);
    r.clock.advance(1);
    assert.deepEqual(r.out.map((o) => o.what), ['close']);
  });

  it('0: never closes, drops data for ever', () => {
    const r = record();
    const s = stageOf('timeout:timeout=0', r);
    s.write(b('lost'));
    s.end();
    r.clock.advance(10_000_000);
    assert.equal(r.out.length, 0);
    assert.equal(r.clock.timers.size, 0);
  });
});

describe('reset_peer', () => {
  it('resets the connection timeout ms after it started; data passes until then', () => {
    const r = record();
    const s = stageOf('reset_peer:timeout=200', r);
    s.write(b('a'));
    r.clock.advance(200);
    assert.deepEqual(r.out.map((o) => [o.what, o.at]), [['data', 0], ['reset', 200]]);
  });

  it('0: at once', () => {
    const r = record();
    stageOf('reset_peer', r);
    r.clock.advance(0);
    assert.deepEqual(r.out.map((o) => o.what), ['reset']);
  });
});

describe('cut_after', () => {
  it('reset=true (default): RST after timeout ms', () => {
    const r = record();
    stageOf('cut_after:timeout=300', r);
    r.clock.advance(300);
    assert.deepEqual(r.out.map((o) => [o.what, o.at]), [['reset', 300]]);
  });

  it('reset=false: a clean close', () => {
    const r = record();
    stageOf('cut_after:timeout=300,reset=false', r);
    r.clock.advance(300);
    assert.deepEqual(r.out.map((o) => o.what), ['close']);
  });
});

describe('limit_data', () => {
  it('passes the first bytes bytes (cutting the chunk that crosses) and closes', () => {
    const r = record();
    const s = stageOf('limit_data:bytes=5', r);
    s.write(b('abc'));
    s.write(b('defg'));
    s.write(b('h'));
    assert.equal(r.data().toString(), 'abcde');
    assert.deepEqual(r.out.map((o) => o.what), ['data', 'data', 'close']);
  });

  it('0: closes at the first chunk, which is dropped', () => {
    const r = record();
    const s = stageOf('limit_data:bytes=0', r);
    s.write(b('abc'));
    assert.deepEqual(r.out.map((o) => o.what), ['close']);
  });

  it('a limit never reached passes everything and the end', () => {
    const r = record();
    const s = stageOf('limit_data:bytes=1000000000', r);
    s.write(b('abc'));
    s.end();
    assert.deepEqual(r.out.map((o) => o.what), ['data', 'end']);
  });
});

describe('slicer', () => {
  it('average_size=1: one byte per piece, delay µs apart, nothing lost or reordered', () => {
    const r = record();
    const s = stageOf('slicer:average_size=1,delay=500', r);
    s.write(b('Hola mundo!'));
    s.write(b('?'));
    s.end();
    r.clock.advance(100);
    const pieces = r.out.filter((o) => o.what === 'data');
    assert.equal(pieces.length, 12);
    assert.ok(pieces.every((p) => p.data!.length === 1));
    assert.equal(r.data().toString(), 'Hola mundo!?');
    assert.deepEqual(r.times().slice(0, 3), [0, 0.5, 1]);
    assert.equal(r.out.at(-1)!.what, 'end');
  });

  it('size_variation: sizes within average ± variation, at least 1', () => {
    const r = record({ seed: 3 });
    const s = stageOf('slicer:average_size=10,size_variation=5', r);
    const input = Buffer.alloc(10_000, 7);
    s.write(input);
    const sizes = r.out.map((o) => o.data!.length);
    assert.equal(r.data().length, 10_000);
    for (const n of sizes.slice(0, -1)) assert.ok(n >= 5 && n <= 15, `size ${n}`);
    assert.ok(new Set(sizes).size > 3);
  });

  it('average_size=0: no slicing', () => {
    const r = record();
    const s = stageOf('slicer', r);
    s.write(b('whole'));
    assert.deepEqual(r.out.map((o) => o.data?.toString()), ['whole']);
  });
});

describe('UDP toxics', () => {
  it('packet_loss: the rate drops that share of datagrams; correlation makes bursts, the rate stays', () => {
    const N = 100_000;
    const run = (spec: string): { rate: number; meanBurst: number } => {
      const r = record({ datagram: true, seed: 11 });
      const s = stageOf(spec, r, true);
      const got: boolean[] = [];
      for (let i = 0; i < N; i++) {
        const before = r.out.length;
        s.write(b('p'));
        got.push(r.out.length > before);
      }
      let bursts = 0;
      let lost = 0;
      for (let i = 0; i < N; i++) {
        if (!got[i]) {
          lost++;
          if (i === 0 || got[i - 1]) bursts++;
        }
      }
      return { rate: lost / N, meanBurst: lost / bursts };
    };
    const plain = run('packet_loss:loss_rate=0.3');
    const bursty = run('packet_loss:loss_rate=0.3,correlation=0.8');
    assert.ok(Math.abs(plain.rate - 0.3) < 0.01, `rate ${plain.rate}`);
    assert.ok(Math.abs(bursty.rate - 0.3) < 0.02, `rate with correlation ${bursty.rate}`);
    assert.ok(bursty.meanBurst > plain.meanBurst * 2, `bursts ${bursty.meanBurst} vs ${plain.meanBurst}`);
    assert.equal(run('packet_loss:loss_rate=0').rate, 0);
    assert.equal(run('packet_loss:loss_rate=1').rate, 1);
  });

  it('duplicate: rate=1 sends every datagram twice, 0 never', () => {
    const r = record({ datagram: true });
    const s = stageOf('duplicate:rate=1', r, true);
    s.write(b('a'));
    s.write(b('b'));
    assert.equal(r.data().toString(), 'aabb');
    const r0 = record({ datagram: true });
    stageOf('duplicate:rate=0', r0, true).write(b('a'));
    assert.equal(r0.data().toString(), 'a');
  });

  it('reorder: held datagrams arrive delay ms later, after the ones sent after them', () => {
    const r = record({ datagram: true, seed: 5 });
    const s = stageOf('reorder:rate=0.5,delay=10', r, true);
    for (let i = 0; i < 100; i++) s.write(Buffer.from([i]));
    const early = r.out.length;
    assert.ok(early > 20 && early < 80, `${early} passed at once`);
    assert.equal(s.buffered, 100 - early);
    r.clock.advance(10);
    const order = [...r.data()];
    assert.equal(order.length, 100);
    assert.deepEqual([...order].sort((x, y) => x - y), [...Array(100).keys()]);
    assert.notDeepEqual(order, [...Array(100).keys()]);
  });

  it('corrupt: rate=1 flips exactly one bit of every datagram (a copy: the input is untouched)', () => {
    const r = record({ datagram: true });
    const s = stageOf('corrupt:rate=1', r, true);
    const input = Buffer.alloc(32, 0);
    for (let i = 0; i < 50; i++) s.write(input);
    assert.ok(input.every((x) => x === 0));
    for (const o of r.out) {
      let bits = 0;
      for (const x of o.data!) bits += x.toString(2).split('1').length - 1;
      assert.equal(bits, 1);
    }
  });
});

describe('toxic specs', () => {
  it('TYPE:ATTR=VALUE with stream, toxicity and name; defaults filled in', () => {
    const c = parseToxic('slicer:average_size=1,delay=500,stream=upstream');
    assert.deepEqual(c, { name: 'slicer_upstream', type: 'slicer', stream: 'upstream', toxicity: 1, attributes: { average_size: 1, size_variation: 0, delay: 500 } });
    assert.equal(parseToxic('latency').stream, 'downstream');
    assert.equal(parseToxic('latency:toxicity=0.25,name=slow').toxicity, 0.25);
    assert.equal(parseToxic('cut_after:reset=false').attributes['reset'], false);
  });

  it('toxiproxy JSON shape', () => {
    const c = toxicConfig({ type: 'latency', name: 'lat', stream: 'upstream', toxicity: 0.5, attributes: { latency: 10, jitter: 1 } });
    assert.deepEqual(c, { name: 'lat', type: 'latency', stream: 'upstream', toxicity: 0.5, attributes: { latency: 10, jitter: 1 } });
  });

  it('rejects unknown types, attributes, bad values and the wrong transport with ERR_BAD_TOXIC', () => {
    const bad = [
      'nope',
      'latency:nope=1',
      'latency:latency=abc',
      'latency:latency=',
      'latency:latency=-5',
      'latency:latency',
      'latency:stream=both',
      'latency:toxicity=1.5',
      'latency:toxicity=',
      'limit_data:bytes=1.5',
      'cut_after:reset=yes',
      'packet_loss:loss_rate=0.1', // UDP only
    ];
    for (const spec of bad) assert.throws(() => parseToxic(spec), { code: 'ERR_BAD_TOXIC' }, spec);
    assert.throws(() => parseToxic('slicer:average_size=1', true), { code: 'ERR_BAD_TOXIC' });
    assert.throws(() => parseToxic('packet_loss:loss_rate=1.01', true), { code: 'ERR_BAD_TOXIC' });
    assert.throws(() => toxicConfig({ type: 'latency', attributes: { latency: '10' } }), { code: 'ERR_BAD_TOXIC' });
    assert.throws(() => toxicConfig({ attributes: {} }), { code: 'ERR_BAD_TOXIC' });
  });

  it('huge values are accepted where they make sense', () => {
    assert.equal(parseToxic('limit_data:bytes=9007199254740991').attributes['bytes'], Number.MAX_SAFE_INTEGER);
    assert.equal(parseToxic('bandwidth:rate=1000000000').attributes['rate'], 1e9);
    assert.throws(() => parseToxic('timeout:timeout=99999999999'), { code: 'ERR_BAD_TOXIC' }); // past what a timer can wait
  });
});
