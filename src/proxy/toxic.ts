/**
 * Toxics as toxiproxy names them: a type, attributes, the direction it acts on (`stream`:
 * `upstream` = client to server, `downstream` = server to client) and a `toxicity` (the
 * probability that a new connection gets it). Each type is one file in `toxics/`, which declares
 * its attributes here and makes its stage.
 */
import { SocketkitError } from '../core/errors.js';
import type { StageFactory } from './stage.js';

/** One attribute of a toxic type. */
export interface AttributeSpec {
  readonly kind: 'number' | 'boolean';
  readonly default: number | boolean;
  readonly min?: number;
  readonly max?: number;
  /** Whole numbers only. */
  readonly integer?: boolean;
  readonly help: string;
}

/** What a toxic acts on: TCP byte streams, UDP datagrams, or both. */
export type ToxicTransport = 'tcp' | 'udp' | 'both';

export type Attributes = Readonly<Record<string, number | boolean>>;

/** A toxic type: its attributes and how to make its stage from them. */
export interface ToxicType {
  readonly type: string;
  readonly summary: string;
  readonly transport: ToxicTransport;
  readonly attributes: Readonly<Record<string, AttributeSpec>>;
  readonly create: (attributes: Attributes) => StageFactory;
}

export type ToxicStream = 'upstream' | 'downstream';

/** A toxic as configured: toxiproxy's JSON shape. */
export interface ToxicConfig {
  readonly name: string;
  readonly type: string;
  readonly stream: ToxicStream;
  readonly toxicity: number;
  readonly attributes: Attributes;
}

/** ERR_BAD_TOXIC: an unknown type, attribute or value. */
export function badToxic(message: string): SocketkitError {
  return new SocketkitError('ERR_BAD_TOXIC', message);
}
