/**
 * Names of the objects of a published image (README.md in this folder): hex ids, keys, and the
 * checks on image and tag names. Everything that builds or parses a key goes through here.
 */
import { StrataError } from '../errors.js';
import { HASH_BYTES } from './chunk-hash.js';

export const HEX_ID = /^[0-9a-f]{64}$/;
/** An image or tag name. */
export const NAME = /^(?!\.\.?$)[A-Za-z0-9._-]{1,128}$/;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function toHex(id: Uint8Array): string {
  let s = '';
  for (let i = 0; i < id.length; i++) s += HEX[id[i]!];
  return s;
}

export function fromHex(hex: string): Uint8Array {
  if (!HEX_ID.test(hex)) throw new StrataError('invalid-argument', `${JSON.stringify(hex.slice(0, 80))} is not a content ID (64 lower-case hex digits).`);
  const out = new Uint8Array(HASH_BYTES);
  for (let i = 0; i < HASH_BYTES; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function checkName(name: string, what: 'image' | 'tag'): string {
  if (!NAME.test(name)) {
    throw new StrataError('invalid-argument', `${what} name ${JSON.stringify(name.slice(0, 80))} is not allowed: use 1–128 letters, digits, '.', '_' or '-' (not '.' or '..').`);
  }
  return name;
}

export const packKey = (p: string): string => `packs/${p}.pack`;
export const indexKey = (p: string): string => `packs/${p}.idx`;
export const segmentKey = (s: string): string => `segments/${s}`;
export const versionKey = (v: string): string => `versions/${v}`;
export const tagKey = (image: string, tag: string): string => `images/${image}/tags/${tag}`;
export const markerKey = (image: string, v: string): string => `images/${image}/versions/${v}`;
export const LEASES = 'leases/';
