// Peer-controlled text never reaches a terminal raw (issue 11, items 2 and 3): the one
// neutralising function, the wire-path rules, and the real CLI under a pseudo-terminal against
// scripted hostile peers, checked byte by byte.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { displayWidth, escapeJsonLine, fitColumns, neutralise } from '../src/core/terminal-text.js';
import { checkWirePath } from '../src/transfer/paths.js';
import { ProgressBars } from '../src/cli/progress.js';
import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { BIN, hasCommand } from './helpers/cli.js';
import { runUnderPty } from './helpers/pty.js';
import { SkftPeer, connectWhenListening, scriptedServer } from './helpers/skft-peer.js';
import { tempDir } from './helpers/tmp.js';

/** Names a hostile peer offers: an OSC title change with BEL, a screen clear, an 8-bit CSI, bidi, a line separator. */
const HOSTILE = ['esc_\x1b]0;pwned\x07', '\x1b[2J\x1b[31mRED', 'c1_\u009b31mRED', 'bidi_\u202egnp.exe', 'sep_\u2028x', 'iso_\u2066x\u2069'];

/**
 * What the progress module itself writes on a terminal: cursor up (CSI n A), erase line and
 * below (CSI K, CSI J) and carriage returns. Everything else must be plain text.
 */
function withoutOwnSequences(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[\d*[AKJ]/g, '').replace(/\r/g, '');
}

/** Every terminal-active code point left in `raw` (after our own sequences are removed), as hex. */
function activeCodePoints(raw: Buffer): string[] {
  const text = withoutOwnSequences(raw.toString('utf8'));
  const found: string[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const active = (cp < 0x20 && cp !== 0x0a) || (cp >= 0x7f && cp <= 0x9f) || cp === 0x2028 || cp === 0x2029 || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
    if (active) found.push(cp.toString(16));
  }
  return found;
}

/** A hostile sender's script: offers every hostile name, reads the answers, says DONE, waits for the close. */
async function offerHostile(peer: SkftPeer): Promise<void> {
  peer.hello('sender', { software: 'evil\x1b]0;sw\x07', entries: HOSTILE.length, files: HOSTILE.length, bytes: 5 * HOSTILE.length });
  const hello = await peer.readHello();
  assert.equal(hello.role, 'receiver');
  for (const [id, path] of HOSTILE.entries()) peer.send({ type: 'offer', id, kind: 'file', path, size: 5, mode: 0o644, mtimeMs: 0 });
  for (let i = 0; i < HOSTILE.length; i++) {
    const reply = await peer.next();
    assert.ok(reply?.type === 'reply' && reply.action === 'skip');
  }
  peer.send({ type: 'done' });
  // The sender closes once every answer is in (README, "Dialogue" 4); then the receiver does.
  peer.end();
  await peer.closed();
}

describe('terminal text: one neutralising function', () => {
  it('replaces C0, DEL, C1, separators and bidi controls; keeps ordinary text (wide, accented) as it is', () => {
    assert.equal(neutralise('a\x1b]0;x\x07b\x7f\u009b\u2028\u202e\u2066\u200f'), 'a?]0;x?b??????');
    assert.equal(neutralise('photo-日本-é.jpg'), 'photo-日本-é.jpg');
    assert.equal(neutralise('abcdef', 4), 'abc…');
  });

  it('JSON lines keep their value but lose raw C1 and bidi characters', () => {
    const line = escapeJsonLine(JSON.stringify({ path: 'x\u009by\u202ez' }));
    assert.doesNotMatch(line, /[\u007f-\u009f\u202e]/);
    assert.equal((JSON.parse(line) as { path: string }).path, 'x\u009by\u202ez');
  });

  it('labels are fitted in terminal columns: wide characters count two, the end is kept', () => {
    const label = `${'日本語'.repeat(10)}.txt`;
    const fitted = fitColumns(label, 20, true);
    assert.equal(displayWidth(fitted), 20);
    assert.ok(fitted.startsWith('…') && fitted.trimEnd().endsWith('.txt'), fitted);
    assert.equal(fitColumns('short', 8, true), 'short   ');
  });

  it('a progress bar with a wide label is exactly one line of the terminal width', async () => {
    const stream = Object.assign(new PassThrough(), { columns: 100 });
    const chunks: string[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c.toString('utf8')));
    const bars = new ProgressBars({ stream, enabled: true, intervalMs: 5 });
    bars.start('k', `${'写真'.repeat(40)}\x1b[2J.jpg`, 1000);
    bars.update('k', 500);
    // The bars' redraw timer is unref'd (it must not keep a CLI alive): keep this test's loop running
    // until the first redraw, or the process could find nothing left to wait for.
    const alive = setInterval(() => undefined, 1000);
    try {
      await once(stream, 'data', { signal: AbortSignal.timeout(5000) });
    } finally {
      clearInterval(alive);
    }
    bars.close();
    const drawn = withoutOwnSequences(chunks.join('')).split('\n').filter((l) => l.includes('%'));
    assert.ok(drawn.length > 0, 'a bar was drawn');
    for (const l of drawn) assert.ok(displayWidth(l) <= 99, `bar of ${displayWidth(l)} columns: ${l}`);
    assert.deepEqual(activeCodePoints(Buffer.from(chunks.join(''))), []);
  });
});

describe('wire paths refuse terminal-active code points', () => {
  for (const [what, path] of [
    ['C1 (CSI)', 'c1_\u009b31mRED'],
    ['C1 (NEL)', 'a\u0085b'],
    ['line separator', 'a\u2028b'],
    ['paragraph separator', 'a\u2029b'],
    ['right-to-left override', 'bidi_\u202egnp.exe'],
    ['left-to-right embedding', 'x\u202ay'],
    ['first-strong isolate', 'x\u2068y'],
    ['pop directional isolate', 'x\u2069y'],
  ] as const) {
    it(`refuses ${what}`, () => assert.match(checkWirePath(path) ?? '', /control characters/));
  }
  it('accepts ordinary non-ASCII names', () => {
    assert.equal(checkWirePath('photos/日本/été.jpg'), undefined);
    assert.equal(checkWirePath('a\u00a0b'), undefined);
  });
});

describe('the CLI under a pseudo-terminal against hostile peers', { skip: !hasCommand('script') && 'script (util-linux) is not installed' }, () => {
  it('get against a hostile serve: no escape, BEL or C1 reaches the terminal (FAILED lines, final line)', async (t: TestContext) => {
    const dir = tempDir(t, 'sk-tty-');
    const { port } = await scriptedServer(t, offerHostile);
    const r = await runUnderPty(process.execPath, [BIN, 'get', `127.0.0.1:${port}`, '--dir', join(dir, 'out')], t);
    assert.equal(r.timedOut, false);
    assert.notEqual(r.code, 0);
    const text = r.output.toString('utf8');
    assert.match(text, /FAILED/);
    assert.match(text, /ERR_PATH_UNSAFE/);
    assert.match(text, /esc_\?\]0;pwned\?/, 'the name is shown, neutralised');
    assert.deepEqual(activeCodePoints(r.output), [], `raw output: ${JSON.stringify(text)}`);
    assert.deepEqual(await readdir(join(dir, 'out')), [], 'nothing was created');
  });

  it('receive against a hostile send: no escape, BEL or C1 reaches the terminal', async (t: TestContext) => {
    const dir = tempDir(t, 'sk-tty-');
    const sock = join(dir, 'receive.sock');
    const running = runUnderPty(process.execPath, [BIN, 'receive', '--once', '--insecure', '--listen', `unix:${sock}`, '--dir', join(dir, 'in')], t);
    // --once: the first connection is the client, so no probe; connect until it listens.
    const socket = await connectWhenListening(sock);
    t.after(() => socket.destroy());
    await offerHostile(new SkftPeer(socket));
    const r = await running;
    assert.equal(r.timedOut, false);
    const text = r.output.toString('utf8');
    assert.match(text, /FAILED/);
    assert.match(text, /\?\[2J\?\[31mRED/, 'the name is shown, neutralised');
    assert.deepEqual(activeCodePoints(r.output), [], `raw output: ${JSON.stringify(text)}`);
  });
});
