/**
 * Toxics from what people and programs write: `TYPE[:ATTR=VALUE,...]` on a command line, or
 * toxiproxy's JSON shape (`{type, name, stream, toxicity, attributes}`). Every type, attribute
 * and value is checked here (ERR_BAD_TOXIC), before a connection can pass.
 */
import type { StageFactory } from './stage.js';
import { badToxic, type ToxicConfig, type ToxicType } from './toxic.js';
import { TOXIC_TYPES } from './toxics/index.js';

function toxicType(type: string, udp: boolean): ToxicType {
  const t = TOXIC_TYPES.get(type);
  if (!t) throw badToxic(`unknown toxic type '${type}' (known: ${[...TOXIC_TYPES.keys()].join(', ')})`);
  if (udp && t.transport === 'tcp') throw badToxic(`toxic '${type}' is for TCP streams, not UDP`);
  if (!udp && t.transport === 'udp') throw badToxic(`toxic '${type}' is for UDP datagrams, not TCP`);
  return t;
}

function checkNumber(type: string, name: string, v: number, spec: ToxicType['attributes'][string]): number {
  if (!Number.isFinite(v)) throw badToxic(`toxic ${type}: ${name} must be a number`);
  if (spec.integer === true && !Number.isInteger(v)) throw badToxic(`toxic ${type}: ${name} must be a whole number`);
  if (spec.min !== undefined && v < spec.min) throw badToxic(`toxic ${type}: ${name} must be at least ${spec.min}`);
  if (spec.max !== undefined && v > spec.max) throw badToxic(`toxic ${type}: ${name} must be at most ${spec.max}`);
  return v;
}

/** Checks a toxic in toxiproxy's JSON shape; fills in defaults. `udp`: for a UDP proxy. */
export function toxicConfig(input: unknown, udp = false): ToxicConfig {
  if (typeof input !== 'object' || input === null) throw badToxic('a toxic must be an object');
  const o = input as Record<string, unknown>;
  if (typeof o['type'] !== 'string') throw badToxic('a toxic needs a type');
  const type = o['type'];
  const t = toxicType(type, udp);
  const stream = o['stream'] ?? 'downstream';
  if (stream !== 'upstream' && stream !== 'downstream') throw badToxic(`toxic ${type}: stream must be upstream or downstream`);
  const toxicity = o['toxicity'] ?? 1;
  if (typeof toxicity !== 'number' || !(toxicity >= 0 && toxicity <= 1)) throw badToxic(`toxic ${type}: toxicity must be a number from 0 to 1`);
  const name = o['name'] ?? `${type}_${stream}`;
  if (typeof name !== 'string' || name === '') throw badToxic(`toxic ${type}: name must be a non-empty string`);
  const given = o['attributes'] ?? {};
  if (typeof given !== 'object' || given === null) throw badToxic(`toxic ${type}: attributes must be an object`);
  const attributes: Record<string, number | boolean> = {};
  for (const [k, spec] of Object.entries(t.attributes)) attributes[k] = spec.default;
  for (const [k, v] of Object.entries(given as Record<string, unknown>)) {
    const spec = t.attributes[k];
    if (!spec) throw badToxic(`toxic ${type} has no attribute '${k}' (it has: ${Object.keys(t.attributes).join(', ') || 'none'})`);
    if (spec.kind === 'boolean') {
      if (typeof v !== 'boolean') throw badToxic(`toxic ${type}: ${k} must be true or false`);
      attributes[k] = v;
    } else {
      if (typeof v !== 'number') throw badToxic(`toxic ${type}: ${k} must be a number`);
      attributes[k] = checkNumber(type, k, v, spec);
    }
  }
  return { name, type, stream, toxicity, attributes };
}

/**
 * Parses `TYPE[:ATTR=VALUE,...]` (`stream`, `toxicity` and `name` among the attributes), e.g.
 * `latency:latency=200,jitter=20` or `slicer:average_size=1,delay=500,stream=upstream`.
 */
export function parseToxic(text: string, udp = false): ToxicConfig {
  const colon = text.indexOf(':');
  const type = (colon < 0 ? text : text.slice(0, colon)).trim();
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  const t = toxicType(type, udp);
  const o: Record<string, unknown> = { type };
  const attributes: Record<string, unknown> = {};
  for (const part of rest.split(',')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) throw badToxic(`toxic ${type}: '${part}' is not ATTR=VALUE`);
    const k = part.slice(0, eq).trim();
    const v = part.slice(eq + 1).trim();
    if (k === 'stream' || k === 'name') o[k] = v;
    else if (k === 'toxicity') o[k] = v === '' ? NaN : Number(v);
    else {
      const spec = t.attributes[k];
      if (!spec) throw badToxic(`toxic ${type} has no attribute '${k}' (it has: ${Object.keys(t.attributes).join(', ') || 'none'})`);
      if (spec.kind === 'boolean') {
        if (v !== 'true' && v !== 'false') throw badToxic(`toxic ${type}: ${k} must be true or false`);
        attributes[k] = v === 'true';
      } else {
        if (!/^-?(\d+(\.\d*)?|\.\d+)$/.test(v)) throw badToxic(`toxic ${type}: ${k} must be a number, not '${v}'`);
        attributes[k] = Number(v);
      }
    }
  }
  o['attributes'] = attributes;
  return toxicConfig(o, udp);
}

/** The stage of a configured toxic. */
export function toxicStage(c: ToxicConfig): StageFactory {
  return TOXIC_TYPES.get(c.type)!.create(c.attributes);
}
