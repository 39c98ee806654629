/** Every toxic type, by toxiproxy's name. A new toxic is one file here and one line below. */
import type { ToxicType } from '../toxic.js';
import { latency } from './latency.js';
import { bandwidth } from './bandwidth.js';
import { slowClose } from './slow-close.js';
import { timeout } from './timeout.js';
import { resetPeer } from './reset-peer.js';
import { slicer } from './slicer.js';
import { limitData } from './limit-data.js';
import { cutAfter } from './cut-after.js';
import { packetLoss } from './packet-loss.js';
import { duplicate } from './duplicate.js';
import { reorder } from './reorder.js';
import { corrupt } from './corrupt.js';

export const TOXIC_TYPES: ReadonlyMap<string, ToxicType> = new Map(
  [latency, bandwidth, slowClose, timeout, resetPeer, slicer, limitData, cutAfter, packetLoss, duplicate, reorder, corrupt].map((t) => [t.type, t]),
);
