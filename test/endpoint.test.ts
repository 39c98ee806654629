// Unit tests of the one address parser every command uses (PORT, HOST:PORT, [IPV6]:PORT,
// unix:PATH), its formatter, and host resolution. Errors are matched on their `code` only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatEndpoint, formatPeer, parseEndpoint, resolveInet, type Endpoint, type InetEndpoint } from '../src/net/endpoint.js';
import { DEFAULT_CONNECT_HOST, DEFAULT_LISTEN_HOST, DEFAULT_PORT } from '../src/core/defaults.js';
import { SocketkitError } from '../src/core/errors.js';

const connectOpts = { defaultHost: DEFAULT_CONNECT_HOST };
const listenOpts = { defaultHost: DEFAULT_LISTEN_HOST, allowPortZero: true };

const inet = (host: string, port: number): InetEndpoint => ({ kind: 'inet', host, port });

describe('defaults', () => {
  it('uses port 9800 and listens on loopback unless told otherwise', () => {
    assert.equal(DEFAULT_PORT, 9800);
    assert.equal(DEFAULT_LISTEN_HOST, '127.0.0.1');
  });
});

describe('parseEndpoint', () => {
  const good: ReadonlyArray<readonly [text: string, expected: Endpoint, note: string]> = [
    ['9800', inet('127.0.0.1', 9800), 'a port alone: the default host'],
    ['1', inet('127.0.0.1', 1), 'lowest port'],
    ['65535', inet('127.0.0.1', 65535), 'highest port'],
    ['08080', inet('127.0.0.1', 8080), 'leading zero'],
    [':7000', inet('127.0.0.1', 7000), ':PORT, empty host: the default host'],
    ['127.0.0.1:7000', inet('127.0.0.1', 7000), 'IPv4:PORT'],
    ['localhost:7000', inet('localhost', 7000), 'name:PORT, resolved later'],
    ['example.com', inet('example.com', DEFAULT_PORT), 'a name alone: the default port'],
    ['example.com.:1', inet('example.com.', 1), 'fully qualified name with the root dot'],
    ['my-host_1.lan:22', inet('my-host_1.lan', 22), 'hyphen and underscore in labels'],
    ['10.0.0.1', inet('10.0.0.1', DEFAULT_PORT), 'IPv4 alone'],
    ['[::1]:7000', inet('::1', 7000), '[IPv6]:PORT'],
    ['[::1]', inet('::1', DEFAULT_PORT), '[IPv6] alone'],
    ['::1', inet('::1', DEFAULT_PORT), 'bare IPv6 is a host, never host:port'],
    ['::1:80', inet('::1:80', DEFAULT_PORT), 'so ::1:80 is the address ::1:80, not port 80'],
    ['[2001:db8::a:b]:443', inet('2001:db8::a:b', 443), 'longer IPv6'],
    ['[::ffff:127.0.0.1]:5', inet('::ffff:127.0.0.1', 5), 'IPv4-mapped IPv6'],
    ['[fe80::1%lo]:80', inet('fe80::1%lo', 80), 'IPv6 with a zone (interface)'],
    ['123abc.example:80', inet('123abc.example', 80), 'a label may start with digits'],
    ['LOCALHOST:1', inet('LOCALHOST', 1), 'names keep their case'],
    ['0.0.0.0:7000', inet('0.0.0.0', 7000), 'every IPv4 interface, asked for explicitly'],
    ['[::]:7000', inet('::', 7000), 'every interface, asked for explicitly'],
    ['  7000  ', inet('127.0.0.1', 7000), 'surrounding blanks are ignored'],
    ['unix:/tmp/echo.sock', { kind: 'unix', path: '/tmp/echo.sock' }, 'absolute Unix path'],
    ['unix:rel/echo.sock', { kind: 'unix', path: 'rel/echo.sock' }, 'relative Unix path'],
    ['unix:/tmp/a:b', { kind: 'unix', path: '/tmp/a:b' }, 'a colon inside a Unix path'],
    [`unix:/${'x'.repeat(106)}`, { kind: 'unix', path: `/${'x'.repeat(106)}` }, 'a Unix path of exactly 107 bytes'],
  ];
  for (const [text, expected, note] of good) {
    it(`parses '${text.length > 40 ? `${text.slice(0, 37)}...` : text}' (${note})`, () => {
      assert.deepEqual(parseEndpoint(text, connectOpts), expected);
    });
  }

  it('uses the given default host and default port', () => {
    assert.deepEqual(parseEndpoint('7', { defaultHost: '::1' }), inet('::1', 7));
    assert.deepEqual(parseEndpoint('example.com', { defaultHost: 'x', defaultPort: 81 }), inet('example.com', 81));
    assert.deepEqual(parseEndpoint('[::1]', { defaultHost: 'x', defaultPort: 81 }), inet('::1', 81));
  });

  it('accepts port 0 only where the caller allows it (listeners)', () => {
    assert.deepEqual(parseEndpoint('0', listenOpts), inet('127.0.0.1', 0));
    assert.deepEqual(parseEndpoint('[::1]:0', listenOpts), inet('::1', 0));
    for (const text of ['0', '127.0.0.1:0', '[::1]:0']) {
      assert.throws(() => parseEndpoint(text, connectOpts), { code: 'ERR_BAD_ADDRESS' }, text);
    }
  });

  const bad: ReadonlyArray<readonly [text: string, note: string]> = [
    ['', 'empty'],
    ['   ', 'blank'],
    ['65536', 'port too large'],
    ['99999999', 'port far too large'],
    ['-1', 'negative port'],
    ['host:', 'missing port after the colon'],
    [':', 'a colon alone'],
    ['host:http', 'named port'],
    ['host:80x', 'trailing junk in the port'],
    ['host:1.5', 'fractional port'],
    ['127.0.0.1:+80', 'signed port'],
    ['a b:80', 'space in host'],
    ['-host:80', 'label starting with a hyphen'],
    ['host..name:80', 'empty label'],
    [`${'a'.repeat(64)}.com`, 'label longer than 63'],
    ['2001:db8::1:http', 'an IPv6 address with a port needs brackets'],
    ['1:2:3', 'too many colons'],
    ['host:80:80', 'two ports'],
    ['[::1', 'missing ]'],
    ['[::1]80', 'junk after ]'],
    ['[::1]:', 'empty port after ]:'],
    ['[127.0.0.1]:80', 'IPv4 in brackets'],
    ['[nothost]:80', 'a name in brackets'],
    ['[]:80', 'empty brackets'],
    ['unix:', 'empty Unix path'],
    ['unix:/tmp/a\0b', 'NUL in a Unix path'],
    [`unix:/${'x'.repeat(107)}`, 'Unix path of 108 bytes'],
    ['http://host:80', 'a URL'],
    ['1.2.3', 'three-part IPv4 (the resolver would read it as 1.2.0.3)'],
    ['256.0.0.1:80', 'IPv4 octet out of range'],
    ['1.2.3.4.5', 'five-part IPv4'],
    ['example.123:80', 'an all-numeric top-level label'],
  ];
  for (const [text, note] of bad) {
    it(`rejects ${JSON.stringify(text.length > 40 ? `${text.slice(0, 37)}...` : text)} with ERR_BAD_ADDRESS (${note})`, () => {
      assert.throws(
        () => parseEndpoint(text, connectOpts),
        (err: unknown) => err instanceof SocketkitError && err.code === 'ERR_BAD_ADDRESS' && err.exitCode === 2,
      );
    });
  }
});

describe('formatEndpoint', () => {
  it('writes addresses the way users type them', () => {
    assert.equal(formatEndpoint(inet('127.0.0.1', 9800)), '127.0.0.1:9800');
    assert.equal(formatEndpoint(inet('::1', 9800)), '[::1]:9800');
    assert.equal(formatEndpoint(inet('localhost', 1)), 'localhost:1');
    assert.equal(formatEndpoint({ kind: 'unix', path: '/tmp/s' }), 'unix:/tmp/s');
  });

  it('round-trips through parseEndpoint', () => {
    for (const ep of [inet('127.0.0.1', 1), inet('::1', 65535), inet('2001:db8::1', 80), inet('example.com', 9800), { kind: 'unix', path: '/tmp/a:b' } as const]) {
      assert.deepEqual(parseEndpoint(formatEndpoint(ep), connectOpts), ep);
    }
  });

  it('formats peers, brackets for IPv6 and a placeholder for Unix peers', () => {
    assert.equal(formatPeer('127.0.0.1', 5000), '127.0.0.1:5000');
    assert.equal(formatPeer('::1', 5000), '[::1]:5000');
    assert.equal(formatPeer(undefined, undefined), 'unix-peer');
  });
});

describe('resolveInet', () => {
  it('returns literal addresses without a lookup, with their family', async () => {
    assert.deepEqual(await resolveInet(inet('127.0.0.1', 5)), { address: '127.0.0.1', family: 4, port: 5 });
    assert.deepEqual(await resolveInet(inet('::1', 6)), { address: '::1', family: 6, port: 6 });
  });

  it('resolves localhost to a loopback address of either family', async () => {
    const r = await resolveInet(inet('localhost', 7));
    assert.ok(
      (r.family === 4 && r.address.startsWith('127.')) || (r.family === 6 && r.address === '::1'),
      `localhost resolved to ${r.address} (IPv${r.family})`,
    );
    assert.equal(r.port, 7);
  });

  it('fails with ERR_UNKNOWN_HOST for a name that cannot exist (.invalid, RFC 2606)', async () => {
    await assert.rejects(resolveInet(inet('no-such-host.invalid', 1)), { code: 'ERR_UNKNOWN_HOST' });
  });
});
