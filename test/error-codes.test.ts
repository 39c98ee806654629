// The one table of error codes (src/core/errors.ts ERROR_CODES) against the README's table and
// against every code the sources name: a code printed anywhere is in both tables.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ERROR_CODES, asErrorCode, isErrorCode } from '../src/core/errors.js';

const root = join(import.meta.dirname, '..', '..');

/** Node's own codes that the sources match on (they are read, never raised as ours). */
const NODE_CODE = /^ERR_(SSL_|OSSL_|STREAM_|SOCKET_|TLS_CERT_ALTNAME_INVALID$)/;

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await sourceFiles(p)));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('error codes', () => {
  it("the README's table lists exactly the codes of ERROR_CODES", async () => {
    const readme = await readFile(join(root, 'README.md'), 'utf8');
    const start = readme.indexOf('| code | when |');
    assert.ok(start >= 0, 'README has the error table');
    const table = readme.slice(start, readme.indexOf('\n\n', start));
    const listed = [...table.matchAll(/^\| `(ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]!);
    assert.deepEqual([...listed].sort(), Object.keys(ERROR_CODES).sort());
  });

  it('every ERR_ code named in the sources is in the table (or is one of Node\'s)', async () => {
    const unknown = new Set<string>();
    for (const file of await sourceFiles(join(root, 'src'))) {
      const text = await readFile(file, 'utf8');
      for (const m of text.matchAll(/\bERR_[A-Z][A-Z0-9_]*\b/g)) {
        const code = m[0];
        if (code.endsWith('_') || NODE_CODE.test(code) || isErrorCode(code)) continue;
        unknown.add(`${code} (${file.slice(root.length + 1)})`);
      }
    }
    assert.deepEqual([...unknown], []);
  });

  it('asErrorCode keeps our codes and turns anything else into ERR_PEER', () => {
    assert.equal(asErrorCode('ERR_DISK_FULL'), 'ERR_DISK_FULL');
    assert.equal(asErrorCode('ERR_SOMETHING_NEW'), 'ERR_PEER');
    assert.equal(asErrorCode('toString'), 'ERR_PEER');
    assert.equal(asErrorCode(42), 'ERR_PEER');
    assert.equal(asErrorCode(undefined), 'ERR_PEER');
  });
});

describe('library values and CLI flags', () => {
  it('a library ERR_INVALID_ARG reaches the user as ERR_USAGE naming the flag', async () => {
    const { runMain } = await import('./helpers/cli.js');
    const r = await runMain(['echo', '127.0.0.1:9', 'x', '--pin', 'AB:CD']);
    assert.match(r.stderr, /^socketkit: --pin: pin 'AB:CD' is not a SHA-256 fingerprint .*\(ERR_USAGE\)\n/);
    const d = await runMain(['echo-server', '127.0.0.1:0', '--deny', 'example.org']);
    assert.match(d.stderr, /^socketkit: --deny: 'example.org' is not an IP address .*\(ERR_USAGE\)\n/);
  });

  it('library messages name no CLI flag', async () => {
    const { parsePin, parseCidr, parseAltName, tlsListenTransport, requireSecureListener } = await import('../src/security/index.js');
    const { resolveWorkerCount } = await import('../src/server/index.js');
    const messages: string[] = [];
    for (const f of [
      () => parsePin('AB:CD'),
      () => parseCidr('10.0.0.0/40'),
      () => parseAltName('bad name!'),
      () => tlsListenTransport({}),
      () => resolveWorkerCount('0'),
      () => requireSecureListener({ kind: 'inet', host: '0.0.0.0', port: 1 }, 'plain', false),
    ]) {
      try {
        f();
        assert.fail('expected a refusal');
      } catch (err) {
        messages.push((err as Error).message);
      }
    }
    for (const m of messages) assert.doesNotMatch(m, /--[a-z]/, m);
  });

  it('the CLI adds the flags that fix a failure to the error line', async () => {
    const { runMain } = await import('./helpers/cli.js');
    const r = await runMain(['serve', import.meta.dirname, '--listen', '0.0.0.0:0']);
    assert.match(r.stderr, /^socketkit: refusing to serve files on .*; give --tls --cert FILE --key FILE, or --psk-file FILE, or --insecure .*\(ERR_INSECURE_LISTENER\)\n/);
  });
});

describe('hints: the library guesses, the CLI says what to type (issue 12, item 13)', () => {
  it('a plaintext echo to a TLS server suggests --tls and a pin', async (t) => {
    const { runMain } = await import('./helpers/cli.js');
    const { generateCertificate, tlsListenTransport, startEchoServer } = await import('../src/index.js');
    const cert = await generateCertificate();
    const server = await startEchoServer({ kind: 'inet', host: '127.0.0.1', port: 0 }, { transport: tlsListenTransport({ cert: cert.cert, key: cert.key }) });
    t.after(() => server.close());
    const ep = server.endpoint;
    assert.equal(ep.kind, 'inet');
    const r = await runMain(['echo', `127.0.0.1:${ep.kind === 'inet' ? ep.port : 0}`, 'hello']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^socketkit: .*without echoing a byte.*; for a TLS server, add --tls with --pin FINGERPRINT or --ca CERT .*\(ERR_ECHO_MISMATCH\)\n/);
  });

  it('an echo server that echoes part and closes gets no TLS hint', async (t) => {
    const { createServer } = await import('node:net');
    const { runMain } = await import('./helpers/cli.js');
    const server = createServer((s) => s.once('data', (d) => s.end(d.subarray(0, 2))));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const r = await runMain(['echo', `127.0.0.1:${port}`, 'hello']);
    assert.equal(r.code, 1, r.stderr);
    assert.doesNotMatch(r.stderr, /TLS/);
  });
});

describe('library messages name no CLI flag (the CLI adds them from hints)', () => {
  it('no string in the library modules names a --flag', async () => {
    const offenders: string[] = [];
    for (const dir of ['core', 'net', 'codec', 'message', 'echo', 'server', 'load', 'udp', 'transfer', 'security', 'broker']) {
      for (const file of await sourceFiles(join(root, 'src', dir))) {
        const lines = (await readFile(file, 'utf8')).split('\n');
        for (const [i, line] of lines.entries()) {
          const code = line.replace(/\/\/.*$/, '');
          if (/^\s*(\*|\/\*)/.test(code) || code.includes('setFlagsFromString')) continue;
          if (/['`"][^'`"]*--[a-z][a-z-]+/.test(code)) offenders.push(`${file.slice(root.length + 1)}:${i + 1}: ${line.trim()}`);
        }
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('ERR_USAGE is the CLI\'s: the library refuses a value with ERR_INVALID_ARG', async () => {
    const offenders: string[] = [];
    for (const dir of ['core', 'net', 'codec', 'message', 'echo', 'server', 'load', 'udp', 'transfer', 'security', 'broker']) {
      for (const file of await sourceFiles(join(root, 'src', dir))) {
        for (const [i, line] of (await readFile(file, 'utf8')).split('\n').entries()) {
          if (/SocketkitError\('ERR_USAGE'/.test(line)) offenders.push(`${file.slice(root.length + 1)}:${i + 1}`);
        }
      }
    }
    assert.deepEqual(offenders, []);
  });

  it('get from a raw stream (nc -l, serve --raw) suggests --raw', async (t) => {
    const { createServer } = await import('node:net');
    const { runMain } = await import('./helpers/cli.js');
    const { tempDir } = await import('./helpers/tmp.js');
    const server = createServer((s) => s.end('just some raw bytes, no hello\n'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const r = await runMain(['get', `127.0.0.1:${port}`, '--dir', tempDir(t)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /; the server sends raw bytes \(serve --raw, nc -l\): try --raw \(ERR_TRANSFER_PROTOCOL\)\n/);
  });
});
