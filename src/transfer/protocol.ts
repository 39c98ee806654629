/**
 * The framed transfer protocol (SKFT), versions 1 and 2: the messages, their encoding in frames of the
 * length-prefixed codec, and their validation. Pure: no sockets, no files.
 *
 * Every frame of a connection but the first is one message: a type byte, then the body. Control
 * messages carry a UTF-8 JSON object; a DATA message carries raw file bytes. The first frame in
 * each direction is the hello: `SKFT`, a version byte, a role byte (`S` sender, `R` receiver),
 * then a JSON object describing the peer.
 *
 * The sender offers entries; the receiver answers each offer (receive from an offset, created,
 * or skipped with a coded reason); the sender streams accepted files in offer order as
 * BEGIN, DATA..., END(digest of the whole file); the receiver verifies and answers RESULT.
 * Version 2 adds the hash to the hello (see {@link agreeHash}); the messages are those of version
 * 1, their digest fields (still named `sha256` and `prefixSha256`) holding the agreed hash's.
 * See the README ("File transfer protocol") for the full dialogue.
 */
import { SocketkitError, asErrorCode, type ErrorCode, type ErrorHint } from '../core/errors.js';
import { neutralise } from '../core/terminal-text.js';
import { encodeHeader } from '../codec/index.js';
import { randomBytes } from 'node:crypto';
import { MAX_CONTROL_BYTES, MAX_RANGE_SIZE, MAX_STREAMS, MIN_RANGE_SIZE, MIN_TRANSFER_PROTOCOL_VERSION, TRANSFER_MAGIC, TRANSFER_PROTOCOL_VERSION } from './constants.js';
import { DIGEST_HEX_LENGTH, HASH_NAMES, isHashName, type HashName } from './digest.js';

/** Which way the files go on a connection: a sender offers them, a receiver stores them. */
export type TransferRole = 'sender' | 'receiver';

/** The type byte that starts every message after the hello. */
export const MessageType = {
  /** Keepalive: "I am busy with local work" (hashing a prefix, fsync). Either direction. */
  NOOP: 0x00,
  /** Sender: an entry (file or directory) it proposes to send. */
  OFFER: 0x10,
  /** Sender: the data of an accepted file starts, from this offset. */
  BEGIN: 0x11,
  /** Sender: file bytes, in order, for the file begun last. */
  DATA: 0x12,
  /** Sender: the file's data is complete; here is the SHA-256 of the whole file. */
  END: 0x13,
  /** Sender: the file begun last cannot be completed (read error, file changed). */
  ABORT: 0x14,
  /** Sender: no more offers. */
  DONE: 0x15,
  /** Sender (parallel streams): every range of a file is verified; here is the digest of the whole file. */
  SEAL: 0x16,
  /** Receiver: the answer to an offer. */
  REPLY: 0x20,
  /** Receiver: the outcome of a file after END: verified and in place, or failed. */
  RESULT: 0x21,
  /** Either: a fatal error; the connection closes after it. */
  ERROR: 0x7f,
} as const;

/** A peer's hello. */
export interface Hello {
  /** The highest protocol version the peer speaks. */
  readonly version: number;
  readonly role: TransferRole;
  /** What the peer says about itself and, for a sender, about what it will offer. */
  readonly info: HelloInfo;
}

/** The JSON part of a hello. Every field is optional; unknown fields are ignored. */
export interface HelloInfo {
  /** e.g. `socketkit/0.1.0`. */
  readonly software?: string;
  /** Sender: entries it will offer (files and directories). */
  readonly entries?: number;
  /** Sender: files among them. */
  readonly files?: number;
  /** Sender: total bytes of those files. */
  readonly bytes?: number;
  /** Version 2: the hashes this side can verify with. */
  readonly hashes?: readonly HashName[];
  /** Version 2: the hash this side's user asked for, if any. */
  readonly hash?: HashName;
  /** This side takes range offers and SEAL (parallel streams); every side of this build says so. */
  readonly ranges?: boolean;
  /** A client opening several connections for one transfer (see parallel.ts). */
  readonly parallel?: ParallelInfo;
}

/** What a client says in its hello when it opens several connections for one transfer. */
export interface ParallelInfo {
  /** Random hex, the same on each connection of the transfer. */
  readonly session: string;
  /** Connections the client opens (at most). */
  readonly streams: number;
  /** Bytes per range the sender should split large files into. */
  readonly rangeSize?: number;
}

/** A fresh session id for {@link ParallelInfo}. */
export function newSessionId(): string {
  return randomBytes(16).toString('hex');
}

/** Parses a hello's `parallel` field; anything malformed is dropped (the connection is then an ordinary one). */
export function parseParallel(v: unknown): ParallelInfo | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const session = o['session'];
  const streams = o['streams'];
  const rangeSize = o['rangeSize'];
  if (typeof session !== 'string' || !/^[0-9a-f]{16,64}$/.test(session)) return undefined;
  if (typeof streams !== 'number' || !Number.isSafeInteger(streams) || streams < 1 || streams > MAX_STREAMS) return undefined;
  const rs = typeof rangeSize === 'number' && Number.isSafeInteger(rangeSize) ? Math.min(MAX_RANGE_SIZE, Math.max(MIN_RANGE_SIZE, rangeSize)) : undefined;
  return { session, streams, ...(rs !== undefined ? { rangeSize: rs } : {}) };
}

/** Whether a peer takes range offers: it said so in its hello (version 2 or later). */
export function takesRanges(version: number, peer: Hello): boolean {
  return version >= 2 && peer.info.ranges === true;
}

/** What a sender proposes: a file (with its size) or a directory. */
export interface OfferMessage {
  readonly type: 'offer';
  /** Chosen by the sender, unique per connection; answers refer to it. */
  readonly id: number;
  readonly kind: 'file' | 'dir';
  /** Relative, `/`-separated; the receiver checks it before anything else. */
  readonly path: string;
  /** File bytes (0 for a directory). */
  readonly size: number;
  /** Permission bits (`mode & 0o777`). */
  readonly mode: number;
  /** Modification time, milliseconds since the epoch. */
  readonly mtimeMs: number;
  /** Parallel streams: this offer is bytes `[start, end)` of the file (whose size is `size`). */
  readonly range?: readonly [number, number];
}

/** The receiver's answer to an offer. */
export type ReplyMessage =
  | {
      readonly type: 'reply';
      readonly id: number;
      readonly action: 'receive';
      /** Bytes the receiver already holds (a partial file); the sender streams from here. */
      readonly offset: number;
      /** SHA-256 (hex) of those bytes, so the sender can check they are a prefix of its file. */
      readonly prefixSha256?: string;
    }
  | { readonly type: 'reply'; readonly id: number; readonly action: 'created' }
  | { readonly type: 'reply'; readonly id: number; readonly action: 'skip'; readonly code: ErrorCode; readonly message: string };

/** The receiver's verdict on a file after its END. */
export type ResultMessage =
  | { readonly type: 'result'; readonly id: number; readonly ok: true; readonly sha256: string }
  | { readonly type: 'result'; readonly id: number; readonly ok: false; readonly code: ErrorCode; readonly message: string };

/** Every message after the hello. */
export type Message =
  | { readonly type: 'noop' }
  | OfferMessage
  | { readonly type: 'begin'; readonly id: number; readonly offset: number }
  | { readonly type: 'data'; readonly bytes: Uint8Array }
  | { readonly type: 'end'; readonly id: number; readonly sha256: string }
  | { readonly type: 'abort'; readonly id: number; readonly code: ErrorCode; readonly message: string }
  | { readonly type: 'done' }
  | { readonly type: 'seal'; readonly id: number; readonly sha256: string }
  | ReplyMessage
  | ResultMessage
  | { readonly type: 'error'; readonly code: ErrorCode; readonly message: string };

/** A control message: every message but DATA. */
export type ControlMessage = Exclude<Message, { type: 'data' }>;

/** The error for anything a peer sends that this protocol does not allow. */
export function protocolError(message: string, cause?: unknown, hint?: ErrorHint): SocketkitError {
  return new SocketkitError('ERR_TRANSFER_PROTOCOL', message, { ...(cause === undefined ? {} : { cause }), ...(hint ? { hint } : {}) });
}

// ---- hello ----------------------------------------------------------------------------------

const MAGIC = Buffer.from(TRANSFER_MAGIC, 'latin1');
const ROLE_BYTE: Record<TransferRole, number> = { sender: 0x53 /* S */, receiver: 0x52 /* R */ };

/** Encodes our hello: the payload of the first frame we send. */
export function encodeHello(role: TransferRole, info: HelloInfo): Buffer {
  const json = Buffer.from(JSON.stringify(info), 'utf8');
  const out = Buffer.allocUnsafe(MAGIC.length + 2 + json.length);
  MAGIC.copy(out, 0);
  out[MAGIC.length] = TRANSFER_PROTOCOL_VERSION;
  out[MAGIC.length + 1] = ROLE_BYTE[role];
  json.copy(out, MAGIC.length + 2);
  return out;
}

/**
 * Parses the peer's hello (the first frame it sent).
 *
 * @throws SocketkitError `ERR_TRANSFER_PROTOCOL` if the frame is not an SKFT hello (the peer
 *   speaks something else, e.g. a raw-mode server streaming a file).
 */
export function parseHello(frame: Uint8Array): Hello {
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
  if (buf.length < MAGIC.length + 2 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw protocolError(`peer does not speak the socketkit transfer protocol (no ${TRANSFER_MAGIC} hello; is it a raw stream?)`, undefined, 'peer-is-raw');
  }
  const version = buf[MAGIC.length]!;
  const roleByte = buf[MAGIC.length + 1]!;
  const role = roleByte === ROLE_BYTE.sender ? 'sender' : roleByte === ROLE_BYTE.receiver ? 'receiver' : undefined;
  if (role === undefined) throw protocolError(`peer announced an unknown role byte 0x${roleByte.toString(16)}`);
  const body = buf.length > MAGIC.length + 2 ? parseJson(buf.subarray(MAGIC.length + 2)) : {};
  const info: HelloInfo = {
    ...(typeof body['software'] === 'string' ? { software: clean(body['software'], 100) } : {}),
    ...(isCount(body['entries']) ? { entries: body['entries'] } : {}),
    ...(isCount(body['files']) ? { files: body['files'] } : {}),
    ...(isCount(body['bytes']) ? { bytes: body['bytes'] } : {}),
    // Names this build does not know are dropped: they cannot be agreed on.
    ...(Array.isArray(body['hashes']) ? { hashes: HASH_NAMES.filter((h) => (body['hashes'] as unknown[]).includes(h)) } : {}),
    ...(isHashName(body['hash']) ? { hash: body['hash'] } : {}),
    ...(body['ranges'] === true ? { ranges: true } : {}),
    ...(parseParallel(body['parallel']) !== undefined ? { parallel: parseParallel(body['parallel'])! } : {}),
  };
  return { version, role, info };
}

/**
 * The version both sides use: the lower of the two announced. This build speaks versions
 * {@link MIN_TRANSFER_PROTOCOL_VERSION} to {@link TRANSFER_PROTOCOL_VERSION}: a version-1 peer
 * is spoken to in version 1, a newer peer steps down to ours.
 *
 * @throws SocketkitError `ERR_TRANSFER_VERSION` if the peer's version is one we cannot speak.
 */
export function negotiateVersion(peer: Hello): number {
  const version = Math.min(peer.version, TRANSFER_PROTOCOL_VERSION);
  if (version < MIN_TRANSFER_PROTOCOL_VERSION) {
    throw new SocketkitError(
      'ERR_TRANSFER_VERSION',
      `peer speaks transfer protocol version ${peer.version}; this socketkit speaks versions ${MIN_TRANSFER_PROTOCOL_VERSION} to ${TRANSFER_PROTOCOL_VERSION}`,
    );
  }
  return version;
}

/** What our hello says about hashes (every one we know, and the one our user asked for), and that we take ranges. */
export function hashHello(asked: HashName | undefined): Pick<HelloInfo, 'hashes' | 'hash' | 'ranges'> {
  return { hashes: HASH_NAMES, ...(asked !== undefined ? { hash: asked } : {}), ranges: true };
}

/**
 * The hash both sides verify with, worked out by each from the two hellos alone (so they agree
 * without another round trip):
 * - version 1, or a peer that does not offer XXH3-128: SHA-256;
 * - either side asked for SHA-256: SHA-256 (a side never gets a weaker check than it asked for);
 * - either side asked for XXH3-128 (and both can): XXH3-128;
 * - nobody asked: SHA-256.
 */
export function agreeHash(version: number, asked: HashName | undefined, peer: Hello): HashName {
  if (version < 2) return 'sha256';
  const wants = [asked, peer.info.hash];
  if (wants.includes('sha256')) return 'sha256';
  if (wants.includes('xxh128') && (peer.info.hashes ?? []).includes('xxh128')) return 'xxh128';
  return 'sha256';
}

/**
 * Checks that a digest from the peer has the agreed hash's length.
 *
 * @throws SocketkitError `ERR_TRANSFER_PROTOCOL` if it does not.
 */
export function checkDigest(hash: HashName, digest: string, what: string): void {
  if (digest.length !== DIGEST_HEX_LENGTH[hash]) throw protocolError(`${what}: a digest of ${digest.length} hex digits, but the agreed hash (${hash}) has ${DIGEST_HEX_LENGTH[hash]}`);
}

// ---- messages -------------------------------------------------------------------------------

/** The wire form of a control message's JSON body (the type travels in the type byte). */
function bodyOf(msg: ControlMessage): Record<string, unknown> | undefined {
  switch (msg.type) {
    case 'noop':
    case 'done':
      return undefined;
    case 'offer':
      return { id: msg.id, kind: msg.kind, path: msg.path, size: msg.size, mode: msg.mode, mtime: msg.mtimeMs, ...(msg.range ? { range: msg.range } : {}) };
    case 'begin':
      return { id: msg.id, offset: msg.offset };
    case 'end':
    case 'seal':
      return { id: msg.id, sha256: msg.sha256 };
    case 'abort':
    case 'error': {
      const { type: _type, ...rest } = msg;
      return rest;
    }
    case 'reply':
    case 'result': {
      const { type: _type, ...rest } = msg;
      return rest;
    }
  }
}

const TYPE_BYTE: Record<ControlMessage['type'], number> = {
  noop: MessageType.NOOP,
  offer: MessageType.OFFER,
  begin: MessageType.BEGIN,
  end: MessageType.END,
  abort: MessageType.ABORT,
  done: MessageType.DONE,
  seal: MessageType.SEAL,
  reply: MessageType.REPLY,
  result: MessageType.RESULT,
  error: MessageType.ERROR,
};

/** Encodes a control message as one frame payload: the type byte, then the JSON body if any. */
export function encodeControl(msg: ControlMessage): Buffer {
  const body = bodyOf(msg);
  const json = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
  const out = Buffer.allocUnsafe(1 + (json?.length ?? 0));
  out[0] = TYPE_BYTE[msg.type];
  json?.copy(out, 1);
  return out;
}

/**
 * The 5 bytes that precede `length` bytes of file data on the wire: the frame's 4-byte length
 * (which counts the type byte) and the DATA type byte. Written before the data itself, so the
 * data is never copied to be framed.
 */
export function dataPrefix(length: number, maxFrameSize?: number): Buffer {
  const head = encodeHeader(length + 1, maxFrameSize === undefined ? undefined : { maxFrameSize });
  const out = Buffer.allocUnsafe(5);
  head.copy(out, 0);
  out[4] = MessageType.DATA;
  return out;
}

/**
 * Parses one frame (after the hello) into a message, checking every field.
 *
 * @throws SocketkitError `ERR_TRANSFER_PROTOCOL` for an empty frame, an unknown type, or a body
 *   that is not what the type requires.
 */
export function parseMessage(frame: Uint8Array): Message {
  if (frame.byteLength === 0) throw protocolError('peer sent an empty frame');
  const type = frame[0]!;
  if (type === MessageType.DATA) return { type: 'data', bytes: frame.subarray(1) };
  if (frame.byteLength - 1 > MAX_CONTROL_BYTES) {
    throw protocolError(`peer sent a control message of ${frame.byteLength - 1} bytes (at most ${MAX_CONTROL_BYTES})`);
  }
  switch (type) {
    case MessageType.NOOP:
      return { type: 'noop' };
    case MessageType.DONE:
      return { type: 'done' };
    case MessageType.OFFER: {
      const b = parseJson(frame.subarray(1));
      const kind = b['kind'];
      if (kind !== 'file' && kind !== 'dir') throw protocolError(`offer: kind must be "file" or "dir"`);
      if (typeof b['path'] !== 'string') throw protocolError('offer: path must be a string');
      return {
        type: 'offer',
        id: count(b, 'id'),
        kind,
        path: b['path'],
        size: count(b, 'size'),
        mode: count(b, 'mode') & 0o7777,
        mtimeMs: typeof b['mtime'] === 'number' && Number.isFinite(b['mtime']) ? b['mtime'] : Date.now(),
        ...(b['range'] !== undefined ? { range: rangeOf(b['range']) } : {}),
      };
    }
    case MessageType.BEGIN: {
      const b = parseJson(frame.subarray(1));
      return { type: 'begin', id: count(b, 'id'), offset: count(b, 'offset') };
    }
    case MessageType.END: {
      const b = parseJson(frame.subarray(1));
      return { type: 'end', id: count(b, 'id'), sha256: sha256Hex(b, 'sha256') };
    }
    case MessageType.SEAL: {
      const b = parseJson(frame.subarray(1));
      return { type: 'seal', id: count(b, 'id'), sha256: sha256Hex(b, 'sha256') };
    }
    case MessageType.ABORT: {
      const b = parseJson(frame.subarray(1));
      return { type: 'abort', id: count(b, 'id'), ...coded(b) };
    }
    case MessageType.ERROR:
      return { type: 'error', ...coded(parseJson(frame.subarray(1))) };
    case MessageType.REPLY: {
      const b = parseJson(frame.subarray(1));
      const id = count(b, 'id');
      switch (b['action']) {
        case 'receive':
          return {
            type: 'reply',
            id,
            action: 'receive',
            offset: count(b, 'offset'),
            ...(b['prefixSha256'] !== undefined ? { prefixSha256: sha256Hex(b, 'prefixSha256') } : {}),
          };
        case 'created':
          return { type: 'reply', id, action: 'created' };
        case 'skip':
          return { type: 'reply', id, action: 'skip', ...coded(b) };
        default:
          throw protocolError('reply: action must be "receive", "created" or "skip"');
      }
    }
    case MessageType.RESULT: {
      const b = parseJson(frame.subarray(1));
      const id = count(b, 'id');
      if (b['ok'] === true) return { type: 'result', id, ok: true, sha256: sha256Hex(b, 'sha256') };
      if (b['ok'] === false) return { type: 'result', id, ok: false, ...coded(b) };
      throw protocolError('result: ok must be true or false');
    }
    default:
      throw protocolError(`peer sent a message of unknown type 0x${type.toString(16).padStart(2, '0')}`);
  }
}

// ---- field checks ---------------------------------------------------------------------------

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw protocolError('peer sent a control message that is not JSON', err);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw protocolError('peer sent a control message that is not a JSON object');
  return value as Record<string, unknown>;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** An offer's `range`: two byte positions, start before end. */
function rangeOf(v: unknown): readonly [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !isCount(v[0]) || !isCount(v[1]) || v[0] >= v[1]) throw protocolError('offer: range must be [start, end], two byte positions with start < end');
  return [v[0], v[1]];
}

function count(b: Record<string, unknown>, name: string): number {
  const v = b[name];
  if (!isCount(v)) throw protocolError(`field "${name}" must be a non-negative integer`);
  return v;
}

/** A digest field: lowercase hex of SHA-256 (64 digits) or XXH3-128 (32); which one was agreed is checked where it is used. */
function sha256Hex(b: Record<string, unknown>, name: string): string {
  const v = b[name];
  if (typeof v !== 'string' || !/^(?:[0-9a-f]{32}|[0-9a-f]{64})$/.test(v)) throw protocolError(`field "${name}" must be 64 (or, for XXH3-128, 32) lowercase hex digits`);
  return v;
}

/** A peer's error code and message, made safe to print: a code-shaped code, no control characters. */
function coded(b: Record<string, unknown>): { code: ErrorCode; message: string } {
  const code = asErrorCode(b['code']);
  const text = typeof b['message'] === 'string' ? clean(b['message'], 300) : 'no reason given';
  // A code this version does not know keeps its name in the message (made safe), as ERR_PEER.
  const message = code === 'ERR_PEER' && typeof b['code'] === 'string' && b['code'] !== 'ERR_PEER' ? `${clean(b['code'], 64)}: ${text}` : text;
  return { code, message };
}

/** Makes text from a peer safe for a terminal, bounded to `max` characters (see `core/terminal-text.ts`). */
export function clean(text: string, max: number): string {
  return neutralise(text, max);
}
