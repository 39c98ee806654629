/**
 * Line-based chat on the broker (ncat's `--chat`, done carefully): every client gets a unique
 * name (`user1`, `user2`, ... never reused while the directory lives), each line it sends goes
 * to the others in its room prefixed with its name, and a few commands manage names and rooms:
 *
 *   /nick NAME   take another name (unique, case-insensitive; letters, digits, `_.-`, 1-32)
 *   /who         who is in this room
 *   /join ROOM   move to another room (default room: lobby)
 *   /quit        leave
 *   /help        the commands
 *
 * Lines are cut at the newline, not at each read (ncat prefixes each `recv()` chunk). What a
 * client sends is neutralised before it reaches the others' terminals: control characters and
 * escape sequences become `?`, invalid UTF-8 becomes U+FFFD. A line longer than `maxLine` bytes
 * is cut there, the rest of it up to its newline dropped, and the sender told once.
 *
 * Rooms and names live in a ChatDirectory: this process's own, or one shared through Redis so
 * that several instances are one chat.
 */
import type { Socket } from 'node:net';
import { neutralise } from '../core/terminal-text.js';
import type { Protocol } from '../server/server.js';
import type { BrokerHub } from './hub.js';
import type { BrokerBridge, ChatDirectory } from './bridge.js';

export const DEFAULT_CHAT_ROOM = 'lobby';
/** Names and rooms: letters, digits, `_`, `.`, `-`; 1 to 32 of them. */
const NAME = /^[A-Za-z0-9_.-]{1,32}$/;
/** Automatic names look like this; nobody may take one by /nick. */
const AUTO_NAME = /^user\d+$/i;

/** What the chat reports for the server's log. */
export type ChatEvent =
  | { readonly event: 'chat-join'; readonly name: string; readonly room: string }
  | { readonly event: 'chat-leave'; readonly name: string; readonly room: string }
  | { readonly event: 'chat-nick'; readonly from: string; readonly to: string };

export interface ChatOptions {
  /** The longest line relayed, bytes (without its newline). */
  readonly maxLine: number;
  readonly directory: ChatDirectory;
  /** Joins other instances: lines and announcements travel through it, as JSON. */
  readonly bridge?: BrokerBridge;
  /** This instance's name in the bridge (so its own messages are not delivered twice). */
  readonly instance: string;
  readonly onEvent?: (e: ChatEvent) => void;
}

interface Member {
  name: string;
  room: string;
  /** The bytes of a line not ended yet. */
  readonly partial: Buffer[];
  partialBytes: number;
  /** Dropping the rest of an over-long line, up to its newline. */
  cutting: boolean;
}

/** A line for a room, as it travels between instances. */
interface RoomLine {
  readonly origin: string;
  readonly room: string;
  readonly line: string;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** A client's bytes as text safe for the others' terminals. */
function cleanLine(bytes: Buffer): string {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x0d) end--;
  return neutralise(decoder.decode(bytes.subarray(0, end)));
}

export class Chat {
  readonly #hub: BrokerHub;
  readonly #options: ChatOptions;
  readonly #members = new Map<Socket, Member>();

  constructor(hub: BrokerHub, options: ChatOptions) {
    this.#hub = hub;
    this.#options = options;
    options.bridge?.subscribe((data) => this.#fromBridge(data));
  }

  /** The managed server's protocol. */
  protocol(): Protocol {
    return (counters) => (socket) => {
      this.#hub.join(socket);
      socket.pause();
      socket.on('end', () => socket.end());
      socket.once('close', () => void this.#left(socket).catch(() => undefined));
      this.#welcome(socket)
        .then(() => {
          socket.on('data', (chunk: Buffer) => {
            const lines = this.#split(socket, chunk);
            if (lines.length === 0) return;
            counters.roundTrips += lines.length;
            // One chunk's lines in order, the socket paused meanwhile (a command may wait on the directory).
            socket.pause();
            this.#consume(socket, lines)
              .catch((err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))))
              .finally(() => {
                if (!socket.destroyed) socket.resume();
              });
          });
          socket.resume();
        })
        .catch((err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))));
    };
  }

  async #welcome(socket: Socket): Promise<void> {
    const { directory } = this.#options;
    let name = '';
    // Numbers are never reused, so a clash means someone took userN by hand in another instance: take the next.
    for (;;) {
      name = `user${await directory.nextUserNumber()}`;
      if (await directory.claim(name, this.#options.instance)) break;
    }
    if (socket.destroyed) {
      await directory.release(name);
      return;
    }
    const m: Member = { name, room: DEFAULT_CHAT_ROOM, partial: [], partialBytes: 0, cutting: false };
    this.#members.set(socket, m);
    await directory.enter(m.room, name);
    const others = (await directory.members(m.room)).length - 1;
    this.#notice(socket, `welcome, ${name}: you are in ${m.room} with ${others} other${others === 1 ? '' : 's'} (/help for commands)`);
    this.#toRoom(m.room, socket, `* ${name} joined ${m.room}`);
    this.#options.onEvent?.({ event: 'chat-join', name, room: m.room });
  }

  async #left(socket: Socket): Promise<void> {
    const m = this.#members.get(socket);
    if (m === undefined) return;
    this.#members.delete(socket);
    this.#toRoom(m.room, socket, `* ${m.name} left ${m.room}`);
    this.#options.onEvent?.({ event: 'chat-leave', name: m.name, room: m.room });
    await this.#options.directory.leave(m.room, m.name);
    await this.#options.directory.release(m.name);
  }

  /** The complete lines in `chunk` (with what came before), bounded by `maxLine`. */
  #split(socket: Socket, chunk: Buffer): Buffer[] {
    const m = this.#members.get(socket);
    if (m === undefined) return [];
    const max = this.#options.maxLine;
    const lines: Buffer[] = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl < 0 ? chunk.length : nl;
      if (m.cutting) {
        if (nl >= 0) m.cutting = false;
      } else {
        const room = max - m.partialBytes;
        if (end - start > room) {
          // Over-long: what fits is the line; the rest, up to its newline, is dropped.
          m.partial.push(chunk.subarray(start, start + room));
          lines.push(Buffer.concat(m.partial));
          m.partial.length = 0;
          m.partialBytes = 0;
          m.cutting = nl < 0;
          this.#notice(socket, `your line was longer than ${max} bytes: it was cut there`);
        } else if (nl < 0) {
          m.partial.push(chunk.subarray(start, end));
          m.partialBytes += end - start;
        } else {
          m.partial.push(chunk.subarray(start, end));
          lines.push(m.partial.length === 1 ? m.partial[0]! : Buffer.concat(m.partial));
          m.partial.length = 0;
          m.partialBytes = 0;
        }
      }
      if (nl < 0) break;
      start = nl + 1;
    }
    return lines;
  }

  async #consume(socket: Socket, lines: readonly Buffer[]): Promise<void> {
    for (const bytes of lines) {
      const m = this.#members.get(socket);
      if (m === undefined || socket.destroyed) return;
      const text = cleanLine(bytes);
      if (text.startsWith('/')) await this.#command(socket, m, text);
      else this.#toRoom(m.room, socket, `<${m.name}> ${text}`);
    }
  }

  async #command(socket: Socket, m: Member, text: string): Promise<void> {
    const [cmd = '', ...args] = text.slice(1).trim().split(/\s+/);
    const arg = args.join(' ');
    const { directory } = this.#options;
    switch (cmd.toLowerCase()) {
      case 'nick': {
        if (!NAME.test(arg)) return this.#notice(socket, `nick: '${arg}' is not a name (1 to 32 letters, digits, '_', '.' or '-')`);
        if (AUTO_NAME.test(arg)) return this.#notice(socket, `nick: names like ${arg} are given out automatically; choose another`);
        if (arg === m.name) return this.#notice(socket, `nick: you are ${arg} already`);
        // Case-only changes keep the claim: the name is the same one.
        const same = arg.toLowerCase() === m.name.toLowerCase();
        if (!same && !(await directory.claim(arg, this.#options.instance))) return this.#notice(socket, `nick: ${arg} is taken`);
        const old = m.name;
        if (!same) await directory.release(old);
        await directory.leave(m.room, old);
        m.name = arg;
        await directory.enter(m.room, arg);
        this.#notice(socket, `you are now ${arg}`);
        this.#toRoom(m.room, socket, `* ${old} is now ${arg}`);
        this.#options.onEvent?.({ event: 'chat-nick', from: old, to: arg });
        return;
      }
      case 'who': {
        const names = await directory.members(m.room);
        return this.#notice(socket, `${m.room} (${names.length}): ${names.join(', ')}`);
      }
      case 'join': {
        if (!NAME.test(arg)) return this.#notice(socket, `join: '${arg}' is not a room name (1 to 32 letters, digits, '_', '.' or '-')`);
        if (arg === m.room) return this.#notice(socket, `join: you are in ${arg} already`);
        const old = m.room;
        this.#toRoom(old, socket, `* ${m.name} left ${old}`);
        this.#options.onEvent?.({ event: 'chat-leave', name: m.name, room: old });
        await directory.leave(old, m.name);
        m.room = arg;
        await directory.enter(arg, m.name);
        const others = (await directory.members(arg)).length - 1;
        this.#notice(socket, `you are in ${arg} with ${others} other${others === 1 ? '' : 's'}`);
        this.#toRoom(arg, socket, `* ${m.name} joined ${arg}`);
        this.#options.onEvent?.({ event: 'chat-join', name: m.name, room: arg });
        return;
      }
      case 'quit':
        this.#notice(socket, 'bye');
        socket.end();
        return;
      case 'help':
        return this.#notice(socket, 'commands: /nick NAME, /who, /join ROOM, /quit, /help');
      default:
        return this.#notice(socket, `unknown command /${neutralise(cmd, 40)} (commands: /nick NAME, /who, /join ROOM, /quit, /help)`);
    }
  }

  /** A line for one client from the server. */
  #notice(socket: Socket, text: string): void {
    this.#hub.sendTo(socket, `* ${text}\n`);
  }

  /** A line for everyone in `room` but `from`, here and on the other instances. */
  #toRoom(room: string, from: Socket | undefined, line: string): void {
    this.#deliver(room, from, line);
    const msg: RoomLine = { origin: this.#options.instance, room, line };
    this.#options.bridge?.publish(Buffer.from(JSON.stringify(msg)));
  }

  #deliver(room: string, from: Socket | undefined, line: string): void {
    const wire = `${line}\n`;
    for (const [socket, m] of this.#members) if (socket !== from && m.room === room) this.#hub.sendTo(socket, wire);
  }

  #fromBridge(data: Buffer): void {
    let msg: Partial<RoomLine>;
    try {
      msg = JSON.parse(data.toString('utf8')) as Partial<RoomLine>;
    } catch {
      return;
    }
    if (typeof msg.room !== 'string' || typeof msg.line !== 'string' || msg.origin === this.#options.instance) return;
    // Made safe again here: another instance may run another version.
    this.#deliver(msg.room, undefined, neutralise(msg.line, this.#options.maxLine + 80));
  }
}
