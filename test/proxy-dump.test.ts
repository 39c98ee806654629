// `socketkit proxy --dump`: the text form (escapes like socat -v), the hex form (rows of 16 like
// socat -v -x), the header (time, connection, direction, offset, length), chunk boundaries as
// read, --dump-file, and nothing from the wire reaching the terminal raw.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { dumpChunk, dumpHeader, dumpHex, dumpText } from '../src/proxy/index.js';
import { formatEndpoint, type Endpoint } from '../src/net/endpoint.js';
import { hasTerminalUnsafe } from '../src/core/terminal-text.js';
import { spawnCli } from './helpers/cli.js';
import { rawConnect, readAll, startTestServer, waitUntil } from './helpers/net.js';
import { tempDir } from './helpers/tmp.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

describe('dump format', () => {
  it('text: printable ASCII as is, \\n ends a line, every other byte escaped', () => {
    assert.equal(dumpText(Buffer.from('Hola mundo!\n')), 'Hola mundo!\\n\n');
    assert.equal(dumpText(Buffer.from('a\r\nb\tc\\d')), 'a\\r\\n\nb\\tc\\\\d\n');
    assert.equal(dumpText(Buffer.from('\x1b[2J\x07\x00\x7f')), '\\x1b[2J\\x07\\x00\\x7f\n');
    assert.equal(dumpText(Buffer.from('é', 'utf8')), '\\xc3\\xa9\n');
    assert.equal(dumpText(Buffer.alloc(0)), '\n');
    assert.ok(!hasTerminalUnsafe(dumpText(Buffer.from([...Array(256).keys()])).replaceAll('\n', '')));
  });

  it('hex: rows of 16 with the stream offset and the printable ASCII', () => {
    const out = dumpHex(Buffer.from('Hola mundo!\n\x1b[31mred and more'), 32);
    assert.deepEqual(out.split('\n'), [
      '00000020  48 6f 6c 61 20 6d 75 6e 64 6f 21 0a 1b 5b 33 31  Hola mundo!..[31',
      '00000030  6d 72 65 64 20 61 6e 64 20 6d 6f 72 65           mred and more',
      '',
    ]);
  });

  it('header: direction, time, connection, offset, length', () => {
    const at = new Date('2026-12-02T13:00:00.123Z');
    assert.equal(dumpHeader(at, 3, '<', 1024, 12), '< 2026-12-02T13:00:00.123Z #3 offset=1024 length=12');
    assert.equal(dumpChunk('text', at, 1, '>', 0, Buffer.from('hi')), '> 2026-12-02T13:00:00.123Z #1 offset=0 length=2\nhi\n');
  });
});

describe('socketkit proxy --dump', () => {
  it('shows each chunk as it was read, both directions, with offsets (--dump-file)', async (t) => {
    // Upstream: 'ab', then (once the client answered) 'cd\x1b]0;pwned\x07' and the end.
    const up = await startTestServer(v4, (s) => {
      s.write('ab');
      s.once('data', () => s.end('cd\x1b]0;pwned\x07'));
    }, t);
    const file = join(tempDir(t), 'dump.txt');
    const proc = spawnCli(['proxy', '127.0.0.1:0', formatEndpoint(up.endpoint), '--dump-file', file, '--json'], t);
    const listening = JSON.parse(await proc.stdout.waitFor(/"event":"listening"/)) as { address: string };
    const [host, port] = listening.address.split(':');
    const c = await rawConnect({ kind: 'inet', host: host!, port: Number(port) });
    await new Promise((resolve) => c.once('data', resolve));
    c.write('ok');
    const rest = await readAll(c);
    assert.equal(rest.toString(), 'cd\x1b]0;pwned\x07');
    await proc.stdout.waitFor(/"event":"disconnect"/);
    proc.kill('SIGTERM');
    await proc.waitExit();
    const lines = readFileSync(file, 'utf8').split('\n');
    const headers = lines.filter((l) => /^[<>] /.test(l)).map((l) => l.replace(/ \S+Z /, ' T '));
    assert.deepEqual(headers, ['< T #1 offset=0 length=2', '> T #1 offset=0 length=2', '< T #1 offset=2 length=12']);
    assert.ok(lines.includes('cd\\x1b]0;pwned\\x07'));
  });

  it('--dump hex on stderr: no byte from the wire reaches the terminal raw', async (t) => {
    const up = await startTestServer(v4, (s) => s.end(Buffer.from('\x1b[2J\x1b]0;title\x07\x9b\r\n')), t);
    const proc = spawnCli(['proxy', '127.0.0.1:0', formatEndpoint(up.endpoint), '--dump', 'hex'], t);
    const line = await proc.stderr.waitFor(/proxy listening on/);
    const address = /listening on (\S+),/.exec(line)![1]!;
    const [host, port] = address.split(':');
    const c = await rawConnect({ kind: 'inet', host: host!, port: Number(port) });
    await readAll(c);
    await proc.stderr.waitFor(/^00000000 /);
    await waitUntil(() => proc.stderr.lines.some((l) => l.startsWith('- ')), 'the close line');
    proc.kill('SIGTERM');
    await proc.waitExit();
    const row = proc.stderr.lines.find((l) => l.startsWith('00000000 '))!;
    assert.equal(row, '00000000  1b 5b 32 4a 1b 5d 30 3b 74 69 74 6c 65 07 c2 9b  .[2J.]0;title...');
    assert.ok(!hasTerminalUnsafe(proc.stderr.lines.join('')), 'no terminal control on stderr');
  });

  it('refuses a --dump format it does not know', async (t) => {
    const proc = spawnCli(['proxy', '127.0.0.1:0', '127.0.0.1:9', '--dump', 'binary'], t);
    const r = await proc.waitExit();
    assert.equal(r.code, 2);
    assert.match(proc.stderr.text, /ERR_USAGE/);
  });
});
