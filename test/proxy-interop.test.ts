// Other programs through `socketkit proxy`: the socket tutorial's Python client that calls
// recv(1024) once gets one byte of the message through slicer:average_size=1 (the bug the
// proxy exists to show), and nc and socat clients relay whole through the plain proxy.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy } from '../src/proxy/index.js';
import { startManagedEchoServer } from '../src/server/index.js';
import { type Endpoint } from '../src/net/endpoint.js';
import { requireTool, run } from './helpers/cli.js';
import { startTestServer } from './helpers/net.js';

const v4: Endpoint = { kind: 'inet', host: '127.0.0.1', port: 0 };

/** The tutorial's client: connect, one recv(1024), print what it got. */
const RECV_ONCE = `
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
data = s.recv(1024)
sys.stdout.write(repr(data))
s.close()
`;

describe('proxy interop', () => {
  it("a Python client's single recv(1024) gets one byte through slicer:average_size=1", async (t) => {
    if (!requireTool(t, 'python3', 'python3')) return;
    const up = await startTestServer(v4, (s) => s.end('Hola mundo!'), t);
    const plain = await startProxy(v4, up.endpoint);
    const sliced = await startProxy(v4, up.endpoint, { toxics: [{ type: 'slicer', attributes: { average_size: 1, delay: 20_000 } }] });
    t.after(() => Promise.all([plain.close(), sliced.close()]));
    const port = (p: typeof plain): string => String(p.endpoint.kind === 'inet' ? p.endpoint.port : 0);
    // On loopback, without the toxic, the one recv() happens to get the whole message...
    const whole = await run('python3', ['-c', RECV_ONCE, port(plain)]);
    assert.equal(whole.stdout.toString(), "b'Hola mundo!'");
    // ...through the slicer it gets the first piece only: the tutorial's bug, shown.
    const cut = await run('python3', ['-c', RECV_ONCE, port(sliced)]);
    assert.equal(cut.code, 0, cut.stderr);
    assert.equal(cut.stdout.toString(), "b'H'");
  });

  for (const [tool, args] of [
    ['nc', (p: number) => ['-q', '1', '127.0.0.1', String(p)]],
    ['socat', (p: number) => ['-', `TCP:127.0.0.1:${p}`]],
  ] as const) {
    it(`${tool} through the proxy to the echo server`, async (t) => {
      if (!requireTool(t, tool, tool === 'nc' ? 'netcat-openbsd' : 'socat')) return;
      const echo = await startManagedEchoServer(v4);
      const p = await startProxy(v4, echo.endpoint);
      t.after(() => Promise.all([p.close(), echo.close(0)]));
      const r = await run(tool, args(p.endpoint.kind === 'inet' ? p.endpoint.port : 0), { input: 'through the proxy\n', timeoutMs: 10_000 });
      assert.equal(r.stdout.toString(), 'through the proxy\n', r.stderr);
    });
  }
});
