/**
 * A scripted SKFT peer for tests: the documented protocol (README "File transfer protocol")
 * spoken by hand over a plain socket, frame by frame, so a test can send what a real
 * socketkit never would (hostile names, messages, lies about prefixes).
 *
 * It uses only the pure encoders of `src/transfer/protocol.ts`, not the library's link, so it
 * stays an independent second implementation of the wire format.
 */
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net';
import { once } from 'node:events';
import { encodeFrame } from '../../src/codec/index.js';
import { dataPrefix, encodeControl, encodeHello, parseHello, parseMessage, type ControlMessage, type Hello, type HelloInfo, type Message, type TransferRole } from '../../src/transfer/protocol.js';
import type { CleanupContext } from './tmp.js';

/** One side of an SKFT connection, scripted. */
export class SkftPeer {
  readonly socket: Socket;
  #buf: Buffer = Buffer.alloc(0);
  #frames: Buffer[] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      while (this.#buf.length >= 4) {
        const len = this.#buf.readUInt32BE(0);
        if (this.#buf.length < 4 + len) break;
        this.#frames.push(this.#buf.subarray(4, 4 + len));
        this.#buf = this.#buf.subarray(4 + len);
      }
      this.#wake?.();
    });
    const end = (): void => {
      this.#ended = true;
      this.#wake?.();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  #frame(payload: Uint8Array): void {
    for (const part of encodeFrame(payload)) this.socket.write(part);
  }

  hello(role: TransferRole, info: HelloInfo = {}): void {
    this.#frame(encodeHello(role, info));
  }

  send(msg: ControlMessage): void {
    this.#frame(encodeControl(msg));
  }

  data(bytes: Uint8Array): void {
    this.socket.write(dataPrefix(bytes.byteLength));
    this.socket.write(bytes);
  }

  /** The next frame, or null once the peer has closed. */
  async #nextFrame(): Promise<Buffer | null> {
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) return f;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }

  async readHello(): Promise<Hello> {
    const f = await this.#nextFrame();
    if (f === null) throw new Error('closed before the hello');
    return parseHello(f);
  }

  /** The next message (NOOPs skipped), or null once the peer has closed. */
  async next(): Promise<Message | null> {
    for (;;) {
      const f = await this.#nextFrame();
      if (f === null) return null;
      const m = parseMessage(f);
      if (m.type !== 'noop') return m;
    }
  }

  /** Waits for the peer to close (reading and dropping what it still sends). */
  async closed(): Promise<void> {
    while ((await this.#nextFrame()) !== null);
  }

  end(): void {
    this.socket.end();
  }
}

/** A TCP server on 127.0.0.1 that runs `script` for each connection; closed when the test ends. */
export async function scriptedServer(t: CleanupContext, script: (peer: SkftPeer) => Promise<void>): Promise<{ server: Server; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const peer = new SkftPeer(socket);
    script(peer).catch(() => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { server, port: (server.address() as { port: number }).port };
}

/**
 * Connects to 127.0.0.1:port (or, given a path, to that Unix socket), retrying while nothing
 * listens yet (bounded by `timeoutMs`). For servers started with `--once`, where a probe
 * connection would be taken for the one client. A child server is best given a Unix socket in
 * the test's own folder: a port freed for it may be taken by a test running beside it first.
 */
export async function connectWhenListening(target: number | string, timeoutMs = 10_000): Promise<Socket> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const socket = typeof target === 'string' ? netConnect({ path: target }) : netConnect({ host: '127.0.0.1', port: target });
    try {
      await once(socket, 'connect');
      return socket;
    } catch (err) {
      socket.destroy();
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
