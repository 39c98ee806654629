/**
 * The control API, compatible with toxiproxy's HTTP API (api.go): the same endpoints, JSON
 * shapes and status codes, so that toxiproxy clients can drive socketkit.
 *
 *   GET  /version                         200 {"version": ...}
 *   GET  /proxies                         200 {name: proxy, ...}
 *   POST /proxies                         201 proxy; 400 missing name/upstream or bad toxic; 409 name taken; 500 cannot listen
 *   POST /populate                        201 {"proxies": [...]} (creates, or replaces those whose config differs)
 *   GET|POST|PATCH|DELETE /proxies/{name} 200 proxy / 204; 404 unknown
 *   GET|POST /proxies/{name}/toxics       200 [toxic...] / 200 toxic; 400 bad type or attribute; 409 name taken
 *   GET|POST|PATCH|DELETE /proxies/{name}/toxics/{toxic}   200 toxic / 204; 404 unknown
 *   POST /reset                           204: every proxy enabled, every toxic removed
 *   GET  /metrics                         200 Prometheus text
 * Errors are `{"error": message, "status": code}`, as toxiproxy sends them.
 *
 * Beyond toxiproxy: `POST /proxies` takes `toxics` too, so a proxy and its toxics are in place
 * before the first connection is accepted (toxiproxy #148); and `"protocol": "udp"` makes a UDP
 * proxy (toxiproxy has none, #39), driven by the same endpoints, with the UDP toxics. As in
 * toxiproxy, a toxic added, changed or removed reaches the connections already open.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { SocketkitError, toSocketkitError, type ErrorCode } from '../core/errors.js';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../net/endpoint.js';
import { startProxy, type ProxyServer } from './proxy.js';
import { startUdpProxy, UdpProxy } from './udp.js';
import { ToxicSet, type ToxicChange } from './live.js';
import type { ToxicConfig } from './toxic.js';

/** The version /version reports. */
export const API_VERSION = 'socketkit-0.1.0';
/** The most a request body may hold. */
const MAX_BODY = 1024 * 1024;

/** An answer other than success: its HTTP status, and the code of what caused it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: ErrorCode = status === 404 ? 'ERR_NOT_FOUND' : status === 409 ? 'ERR_EXISTS' : status >= 500 ? 'ERR_INTERNAL' : 'ERR_BAD_REQUEST',
  ) {
    super(message);
  }
}

/** What an entry's toxics are kept in: the running proxy's (TCP or UDP), or a set of its own while disabled. */
interface ToxicHolder {
  readonly toxics: readonly ToxicConfig[];
  addToxic(toxic: unknown): ToxicConfig;
  updateToxic(name: string, change: ToxicChange): ToxicConfig;
  removeToxic(name: string): void;
}

function holderOf(set: ToxicSet): ToxicHolder {
  return {
    get toxics() {
      return set.list;
    },
    addToxic: (t) => set.add(t),
    updateToxic: (n, c) => set.update(n, c),
    removeToxic: (n) => set.remove(n),
  };
}

/** `tcp` (toxiproxy's only kind) or `udp` (socketkit's addition: `"protocol": "udp"` in the proxy's JSON). */
export type ApiProtocol = 'tcp' | 'udp';

interface ProxyEntry {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  protocol: ApiProtocol;
  server: ProxyServer | UdpProxy | undefined;
  /** Toxics kept while disabled (the server holds them while enabled). */
  idle: ToxicSet;
}

function holder(p: ProxyEntry): ToxicHolder {
  return p.server ?? holderOf(p.idle);
}

function proxyJson(p: ProxyEntry): Record<string, unknown> {
  return {
    name: p.name,
    listen: p.server ? formatEndpoint(p.server.endpoint) : p.listen,
    upstream: p.upstream,
    enabled: p.enabled,
    toxics: [...holder(p).toxics],
    // toxiproxy's shape for TCP proxies; the field only where it says something toxiproxy cannot.
    ...(p.protocol === 'udp' ? { protocol: 'udp' } : {}),
  };
}

function endpointOf(field: string, text: unknown, listen: boolean): Endpoint {
  if (typeof text !== 'string' || text === '') throw new ApiError(400, `missing required field: ${field}`);
  try {
    return parseEndpoint(text, { defaultHost: '127.0.0.1', allowPortZero: listen });
  } catch (err) {
    throw new ApiError(400, `bad request body: ${field}: ${toSocketkitError(err).message}`);
  }
}

function toxicError(err: unknown): ApiError {
  const e = toSocketkitError(err);
  if (e.code === 'ERR_TOXIC_EXISTS') return new ApiError(409, 'toxic already exists');
  if (e.code === 'ERR_TOXIC_NOT_FOUND') return new ApiError(404, 'toxic not found');
  if (e.code === 'ERR_BAD_TOXIC') return new ApiError(400, `${/unknown toxic type/.test(e.message) ? 'invalid toxic type' : 'bad request body'}: ${e.message}`);
  return new ApiError(500, e.message);
}

function protocolOf(o: Record<string, unknown>): ApiProtocol {
  const v = o['protocol'] ?? 'tcp';
  if (v !== 'tcp' && v !== 'udp') throw new ApiError(400, `bad request body: protocol must be "tcp" or "udp"`);
  return v;
}

/** The API's state: named proxies. */
export class ProxyApi {
  readonly #proxies = new Map<string, ProxyEntry>();

  async #start(p: ProxyEntry): Promise<void> {
    try {
      const listen = endpointOf('listen', p.listen, true);
      const upstream = endpointOf('upstream', p.upstream, false);
      const toxics = p.idle.list;
      p.server = p.protocol === 'udp' ? await startUdpProxy(listen, upstream, { toxics }) : await startProxy(listen, upstream, { toxics });
      p.idle = new ToxicSet([], p.protocol === 'udp');
      // As toxiproxy: the address really bound (port 0 resolved) is the proxy's listen from now on.
      p.listen = formatEndpoint(p.server.endpoint);
    } catch (err) {
      if (err instanceof ApiError) throw err;
      if (err instanceof SocketkitError && err.code === 'ERR_BAD_TOXIC') throw toxicError(err);
      const e = toSocketkitError(err);
      throw new ApiError(500, `listen ${p.listen}: ${e.message}`, e.code);
    }
  }

  async #stop(p: ProxyEntry): Promise<void> {
    if (!p.server) return;
    const s = p.server;
    p.idle = new ToxicSet(s.toxics, p.protocol === 'udp');
    p.server = undefined;
    if (s instanceof UdpProxy) await s.close();
    else await s.close(0);
  }

  #get(name: string): ProxyEntry {
    const p = this.#proxies.get(name);
    if (!p) throw new ApiError(404, 'proxy not found');
    return p;
  }

  /** Creates a proxy (with its toxics, in place before the first connection). */
  async create(body: unknown): Promise<ProxyEntry> {
    const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    if (typeof o['name'] !== 'string' || o['name'] === '') throw new ApiError(400, 'missing required field: name');
    if (typeof o['upstream'] !== 'string' || o['upstream'] === '') throw new ApiError(400, 'missing required field: upstream');
    const name = o['name'];
    if (this.#proxies.has(name)) throw new ApiError(409, 'proxy already exists');
    const protocol = protocolOf(o);
    let idle: ToxicSet;
    try {
      idle = new ToxicSet(Array.isArray(o['toxics']) ? o['toxics'] : [], protocol === 'udp');
    } catch (err) {
      throw toxicError(err);
    }
    const p: ProxyEntry = { name, listen: typeof o['listen'] === 'string' && o['listen'] !== '' ? o['listen'] : '127.0.0.1:0', upstream: o['upstream'], enabled: o['enabled'] !== false, protocol, server: undefined, idle };
    endpointOf('listen', p.listen, true);
    endpointOf('upstream', p.upstream, false);
    this.#proxies.set(name, p);
    try {
      if (p.enabled) await this.#start(p);
    } catch (err) {
      this.#proxies.delete(name);
      throw err;
    }
    return p;
  }

  async update(name: string, body: unknown): Promise<ProxyEntry> {
    const p = this.#get(name);
    const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const listen = typeof o['listen'] === 'string' ? o['listen'] : p.listen;
    const upstream = typeof o['upstream'] === 'string' ? o['upstream'] : p.upstream;
    const enabled = typeof o['enabled'] === 'boolean' ? o['enabled'] : p.enabled;
    if (o['protocol'] !== undefined && protocolOf(o) !== p.protocol) throw new ApiError(400, 'bad request body: a proxy cannot change its protocol (delete it and create it again)');
    endpointOf('listen', listen, true);
    endpointOf('upstream', upstream, false);
    const changed = listen !== p.listen || upstream !== p.upstream;
    if (p.server && (changed || !enabled)) await this.#stop(p);
    p.listen = listen;
    p.upstream = upstream;
    p.enabled = enabled;
    if (enabled && !p.server) await this.#start(p);
    return p;
  }

  async remove(name: string): Promise<void> {
    const p = this.#get(name);
    this.#proxies.delete(name);
    await this.#stop(p);
  }

  async populate(body: unknown): Promise<ProxyEntry[]> {
    if (!Array.isArray(body)) throw new ApiError(400, 'bad request body: expected an array of proxies');
    const out: ProxyEntry[] = [];
    for (const item of body) {
      const o = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
      const name = typeof o['name'] === 'string' ? o['name'] : '';
      const old = this.#proxies.get(name);
      if (old && (old.listen !== o['listen'] || old.upstream !== o['upstream'] || old.protocol !== (o['protocol'] ?? 'tcp'))) await this.remove(name);
      out.push(this.#proxies.get(name) ?? (await this.create(item)));
    }
    return out;
  }

  async reset(): Promise<void> {
    for (const p of this.#proxies.values()) {
      const h = holder(p);
      for (const t of h.toxics) h.removeToxic(t.name);
      p.enabled = true;
      if (!p.server) await this.#start(p);
    }
  }

  toxics(name: string): ToxicConfig[] {
    return [...holder(this.#get(name)).toxics];
  }

  addToxic(name: string, body: unknown): ToxicConfig {
    const h = holder(this.#get(name));
    try {
      return h.addToxic(body);
    } catch (err) {
      throw toxicError(err);
    }
  }

  toxic(name: string, toxic: string): ToxicConfig {
    const t = holder(this.#get(name)).toxics.find((x) => x.name === toxic);
    if (!t) throw new ApiError(404, 'toxic not found');
    return t;
  }

  updateToxic(name: string, toxic: string, body: unknown): ToxicConfig {
    const h = holder(this.#get(name));
    const o = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const change: ToxicChange = {
      ...(typeof o['stream'] === 'string' ? { stream: o['stream'] } : {}),
      ...(typeof o['toxicity'] === 'number' ? { toxicity: o['toxicity'] } : {}),
      ...(typeof o['attributes'] === 'object' && o['attributes'] !== null ? { attributes: o['attributes'] as Record<string, unknown> } : {}),
    };
    try {
      return h.updateToxic(toxic, change);
    } catch (err) {
      throw toxicError(err);
    }
  }

  removeToxic(name: string, toxic: string): void {
    const h = holder(this.#get(name));
    try {
      h.removeToxic(toxic);
    } catch (err) {
      throw toxicError(err);
    }
  }

  list(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const p of this.#proxies.values()) out[p.name] = proxyJson(p);
    return out;
  }

  show(name: string): Record<string, unknown> {
    return proxyJson(this.#get(name));
  }

  metrics(): string {
    const lines = [
      '# HELP socketkit_proxy_connections_open Connections open now (UDP: client addresses with a session).',
      '# TYPE socketkit_proxy_connections_open gauge',
      '# HELP socketkit_proxy_connections_total Connections accepted (UDP: sessions opened).',
      '# TYPE socketkit_proxy_connections_total counter',
      '# HELP socketkit_proxy_received_bytes_total Bytes read from clients.',
      '# TYPE socketkit_proxy_received_bytes_total counter',
      '# HELP socketkit_proxy_sent_bytes_total Bytes written to clients (UDP: read from the upstream for them).',
      '# TYPE socketkit_proxy_sent_bytes_total counter',
    ];
    for (const p of this.#proxies.values()) {
      const s = p.server instanceof UdpProxy ? udpMetrics(p.server) : p.server?.server.stats();
      const label = `{proxy=${JSON.stringify(p.name)},listener=${JSON.stringify(p.listen)},upstream=${JSON.stringify(p.upstream)}${p.protocol === 'udp' ? ',protocol="udp"' : ''}}`;
      lines.push(`socketkit_proxy_connections_open${label} ${s?.connections ?? 0}`);
      lines.push(`socketkit_proxy_connections_total${label} ${s?.accepted ?? 0}`);
      lines.push(`socketkit_proxy_received_bytes_total${label} ${s?.bytesIn ?? 0}`);
      lines.push(`socketkit_proxy_sent_bytes_total${label} ${s?.bytesOut ?? 0}`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** Closes every proxy. */
  async close(): Promise<void> {
    for (const p of [...this.#proxies.values()]) await this.#stop(p);
  }

  toJson(p: ProxyEntry): Record<string, unknown> {
    return proxyJson(p);
  }
}

function udpMetrics(u: UdpProxy): { connections: number; accepted: number; bytesIn: number; bytesOut: number } {
  const s = u.stats();
  return { connections: s.sessions, accepted: s.opened, bytesIn: s.bytesUp, bytesOut: s.bytesDown };
}

function readBody(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_BODY) {
        reject(new ApiError(413, 'request body too large'));
        req.destroy();
        return;
      }
      parts.push(c);
    });
    req.once('end', () => {
      const text = Buffer.concat(parts).toString('utf8');
      if (text.trim() === '') {
        resolve({});
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new ApiError(400, 'bad request body'));
      }
    });
    req.once('error', reject);
  });
}

function send(res: ServerResponse, status: number, body?: unknown, type = 'application/json'): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) }).end(text);
}

async function route(api: ProxyApi, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://x');
  const parts = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  const m = req.method ?? 'GET';
  const write = m === 'POST' || m === 'PATCH';
  if (parts.length === 1 && parts[0] === 'version' && m === 'GET') return send(res, 200, { version: API_VERSION });
  if (parts.length === 1 && parts[0] === 'metrics' && m === 'GET') return send(res, 200, api.metrics(), 'text/plain; version=0.0.4');
  if (parts.length === 1 && parts[0] === 'reset' && m === 'POST') {
    await api.reset();
    return send(res, 204);
  }
  if (parts.length === 1 && parts[0] === 'populate' && m === 'POST') {
    const ps = await api.populate(await readBody(req));
    return send(res, 201, { proxies: ps.map((p) => api.toJson(p)) });
  }
  if (parts[0] === 'proxies') {
    if (parts.length === 1 && m === 'GET') return send(res, 200, api.list());
    if (parts.length === 1 && m === 'POST') return send(res, 201, api.toJson(await api.create(await readBody(req))));
    const name = parts[1]!;
    if (parts.length === 2) {
      if (m === 'GET') return send(res, 200, api.show(name));
      if (write) return send(res, 200, api.toJson(await api.update(name, await readBody(req))));
      if (m === 'DELETE') {
        await api.remove(name);
        return send(res, 204);
      }
    }
    if (parts.length === 3 && parts[2] === 'toxics') {
      if (m === 'GET') return send(res, 200, api.toxics(name));
      if (m === 'POST') return send(res, 200, api.addToxic(name, await readBody(req)));
    }
    if (parts.length === 4 && parts[2] === 'toxics') {
      const toxic = parts[3]!;
      if (m === 'GET') return send(res, 200, api.toxic(name, toxic));
      if (write) return send(res, 200, api.updateToxic(name, toxic, await readBody(req)));
      if (m === 'DELETE') {
        api.removeToxic(name, toxic);
        return send(res, 204);
      }
    }
  }
  throw new ApiError(404, '404 page not found');
}

/** A running API server. */
export interface ApiServer {
  readonly api: ProxyApi;
  readonly endpoint: Endpoint;
  close(): Promise<void>;
}

/** Serves the toxiproxy-compatible API on `ep`; `config` is toxiproxy's config (an array of proxies). */
export async function startApiServer(ep: Endpoint, config?: unknown): Promise<ApiServer> {
  const api = new ProxyApi();
  if (config !== undefined) {
    try {
      await api.populate(config);
    } catch (err) {
      await api.close();
      throw new SocketkitError('ERR_BAD_CONFIG', `proxy config: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  const server: Server = createServer((req, res) => {
    route(api, req, res).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError(500, toSocketkitError(err).message);
      if (!res.headersSent) send(res, e.status, { error: e.message, status: e.status });
      else res.destroy();
    });
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(toSocketkitError(err, formatEndpoint(ep)));
      server.once('error', onError);
      const onListening = (): void => {
        server.removeListener('error', onError);
        resolve();
      };
      if (ep.kind === 'unix') server.listen({ path: ep.path }, onListening);
      else server.listen({ host: ep.host, port: ep.port }, onListening);
    });
  } catch (err) {
    await api.close();
    throw err;
  }
  const addr = server.address();
  const endpoint: Endpoint = ep.kind === 'inet' && addr !== null && typeof addr === 'object' ? { kind: 'inet', host: ep.host, port: addr.port } : ep;
  let closing: Promise<void> | undefined;
  return {
    api,
    endpoint,
    close: () => {
      closing ??= (async () => {
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await api.close();
      })();
      return closing;
    },
  };
}
