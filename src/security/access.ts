/**
 * Allow and deny lists (`--allow CIDR`, `--deny CIDR`), checked with net.BlockList the moment a
 * connection arrives, before a byte is read. (Node 20 ignores a `blockList` listen option, so
 * the check runs in the connection handler: the listener's `admit` hook.)
 *
 * Rules: a peer matching any deny entry is refused; otherwise, if there are allow entries, a
 * peer must match one of them; with neither, everyone is admitted. Deny wins, so
 * `--allow 10.0.0.0/8 --deny 10.0.0.66` works as written. IPv4 peers reaching an IPv6 socket
 * (`::ffff:10.1.2.3`) are checked as the IPv4 address they are. Unix socket peers have no
 * address and are always admitted: file permissions guard a Unix socket.
 */
import { BlockList, isIP, type Socket } from 'node:net';
import { SocketkitError } from '../core/errors.js';

/** A parsed `ADDRESS/PREFIX` (a bare address is a single host). */
export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
  /** As the user wrote it, for messages. */
  readonly text: string;
}

/** Parses `10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`, `[::1]`; throws ERR_INVALID_ARG when malformed. */
export function parseCidr(text: string): Cidr {
  const t = text.trim();
  const slash = t.indexOf('/');
  const addr = (slash < 0 ? t : t.slice(0, slash)).replace(/^\[(.*)\]$/, '$1');
  const fam = isIP(addr);
  if (fam === 0) throw new SocketkitError('ERR_INVALID_ARG', `'${text}' is not an IP address or CIDR block (like 10.0.0.0/8 or 2001:db8::/32)`);
  const max = fam === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) throw new SocketkitError('ERR_INVALID_ARG', `'${text}' has a prefix length outside 0-${max}`);
    prefix = Number(p);
  }
  return { address: addr, prefix, family: fam === 4 ? 'ipv4' : 'ipv6', text: t };
}

export interface AccessListOptions {
  /** CIDR blocks admitted; when any are given, everyone else is refused. */
  readonly allow?: readonly string[];
  /** CIDR blocks refused, whatever `allow` says. */
  readonly deny?: readonly string[];
}

export type AccessDecision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string };

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything else unchanged. */
function unmapped(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m) return { address: m[1]!, family: 'ipv4' };
  return { address, family: isIP(address) === 4 ? 'ipv4' : 'ipv6' };
}

function blockList(rules: readonly Cidr[]): BlockList {
  const list = new BlockList();
  for (const r of rules) list.addSubnet(r.address, r.prefix, r.family);
  return list;
}

/** An allow/deny list; `admit` plugs into `listen()`. */
export class AccessList {
  readonly allow: readonly Cidr[];
  readonly deny: readonly Cidr[];
  readonly #allow: BlockList;
  readonly #deny: BlockList;
  /** One list per deny rule, built once, to name the rule that matched (a UDP server checks every datagram). */
  readonly #denyEach: readonly { readonly rule: Cidr; readonly list: BlockList }[];
  readonly #allowText: string;

  constructor(options: AccessListOptions = {}) {
    this.allow = (options.allow ?? []).map((t) => parseCidr(t));
    this.deny = (options.deny ?? []).map((t) => parseCidr(t));
    this.#allow = blockList(this.allow);
    this.#deny = blockList(this.deny);
    this.#denyEach = this.deny.map((rule) => ({ rule, list: blockList([rule]) }));
    this.#allowText = this.allow.map((r) => r.text).join(', ');
  }

  /** True when there is no rule at all (every peer is admitted). */
  get empty(): boolean {
    return this.allow.length === 0 && this.deny.length === 0;
  }

  /** Decides for one peer address; `undefined` (a Unix socket peer) is always allowed. */
  check(address: string | undefined): AccessDecision {
    if (address === undefined || isIP(address) === 0) return { allowed: true };
    const a = unmapped(address);
    if (this.#deny.check(a.address, a.family)) {
      const rule = this.#denyEach.find((d) => d.list.check(a.address, a.family))?.rule;
      return { allowed: false, reason: `access denied: ${a.address} matches the deny rule ${rule?.text ?? '?'} (ERR_ACCESS_DENIED)` };
    }
    if (this.allow.length > 0 && !this.#allow.check(a.address, a.family)) {
      return { allowed: false, reason: `access denied: ${a.address} is not in the allow list ${this.#allowText} (ERR_ACCESS_DENIED)` };
    }
    return { allowed: true };
  }

  /** The `admit` hook for `listen()`: a refusal reason, or undefined to admit. */
  readonly admit = (socket: Socket): string | undefined => {
    const d = this.check(socket.remoteAddress);
    return d.allowed ? undefined : d.reason;
  };
}
