import { StrataError, type ErrorCode } from '../errors.js';
import { MAX_SEGMENT_SIZE } from './sums-format.js';

/**
 * The messages of a resync side served over a Link (src/consistency/link.ts): the client
 * (remoteSide) asks, the server (serveResyncSide) answers, each request with an `id` echoed in
 * its reply. Payloads travel in `data`. Everything received is untrusted: every field is checked
 * here, counts and lengths are bounded before anything is allocated, and a message that fails a
 * check is refused (the server answers `error`; the client closes the link).
 */
export const PROTOCOL = 'stratadisk-resync/1';
/** segments per `known` or `hash` request (17 bytes each on the wire at most: ~1.1 MiB) */
export const MAX_SEGMENTS_PER_REQUEST = 65536;
/** bytes per read or write (under the framing's payload limit) */
export const MAX_IO = 16 * 1024 * 1024;

export type Request =
  | { t: 'hello'; id: number; protocol: string }
  | { t: 'known'; id: number; first: number; count: number }
  | { t: 'hash'; id: number; data: Uint8Array }
  | { t: 'read'; id: number; offset: number; length: number }
  | { t: 'write'; id: number; offset: number; data: Uint8Array }
  | { t: 'flush'; id: number };

export interface SideInfo {
  size: number;
  segmentSize: number;
  writable: boolean;
  identity: string;
  label: string;
}

export type Reply =
  | ({ t: 'info'; id: number } & SideInfo)
  | { t: 'data'; id: number; data: Uint8Array; hashed?: number }
  | { t: 'ok'; id: number }
  | { t: 'error'; id: number; code: ErrorCode; message: string };

function bad(what: string): StrataError {
  return new StrataError('corrupt', `A resync peer sent a malformed message (${what}).`);
}

function obj(m: unknown): Record<string, unknown> {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) throw bad('not an object');
  return m as Record<string, unknown>;
}

function int(o: Record<string, unknown>, k: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) throw bad(`field ${k}`);
  return v;
}

function str(o: Record<string, unknown>, k: string, max = 4096): string {
  const v = o[k];
  if (typeof v !== 'string' || v.length > max) throw bad(`field ${k}`);
  return v;
}

function bytes(o: Record<string, unknown>, k: string, max: number): Uint8Array {
  const v = o[k];
  if (!(v instanceof Uint8Array) || v.length > max) throw bad(`field ${k}`);
  return v;
}

export function parseRequest(m: unknown): Request {
  const o = obj(m);
  const id = int(o, 'id');
  switch (o.t) {
    case 'hello':
      return { t: 'hello', id, protocol: str(o, 'protocol', 64) };
    case 'known':
      return { t: 'known', id, first: int(o, 'first'), count: int(o, 'count', MAX_SEGMENTS_PER_REQUEST) };
    case 'hash': {
      const data = bytes(o, 'data', MAX_SEGMENTS_PER_REQUEST * 4);
      if (data.length % 4 !== 0) throw bad('segment list');
      return { t: 'hash', id, data };
    }
    case 'read':
      return { t: 'read', id, offset: int(o, 'offset'), length: int(o, 'length', MAX_IO) };
    case 'write':
      return { t: 'write', id, offset: int(o, 'offset'), data: bytes(o, 'data', MAX_IO) };
    case 'flush':
      return { t: 'flush', id };
    default:
      throw bad('unknown type');
  }
}

const CODES: ReadonlySet<string> = new Set(['out-of-range', 'invalid-argument', 'corrupt', 'checksum-mismatch', 'quota', 'locked', 'read-only', 'frozen', 'timeout', 'unsupported', 'aborted', 'not-found', 'exists', 'closed', 'io', 'permission-denied']);

export function parseReply(m: unknown): Reply {
  const o = obj(m);
  const id = int(o, 'id');
  switch (o.t) {
    case 'info': {
      const segmentSize = int(o, 'segmentSize', MAX_SEGMENT_SIZE);
      if (segmentSize < 4096 || (segmentSize & (segmentSize - 1)) !== 0) throw bad('segment size');
      if (typeof o.writable !== 'boolean') throw bad('field writable');
      return { t: 'info', id, size: int(o, 'size'), segmentSize, writable: o.writable, identity: str(o, 'identity'), label: str(o, 'label') };
    }
    case 'data': {
      const hashed = o.hashed === undefined ? undefined : int(o, 'hashed');
      return { t: 'data', id, data: bytes(o, 'data', MAX_IO), ...(hashed !== undefined ? { hashed } : {}) };
    }
    case 'ok':
      return { t: 'ok', id };
    case 'error': {
      const code = str(o, 'code', 64);
      return { t: 'error', id, code: (CODES.has(code) ? code : 'io') as ErrorCode, message: str(o, 'message', 2000) };
    }
    default:
      throw bad('unknown type');
  }
}

/** Bytes a message costs on the wire: its JSON (without the payload) plus the payload. */
export function wireBytes(msg: Record<string, unknown>): number {
  let payload = 0;
  // the holder's own value: JSON.stringify hands the replacer a Buffer (what the WebSocket link
  // delivers) already turned into {type, data: [...]} by its toJSON
  const json = JSON.stringify(msg, function (this: Record<string, unknown>, k, v: unknown) {
    const raw = this[k];
    if (k === 'data' && raw instanceof Uint8Array) {
      payload += raw.length;
      return undefined;
    }
    return v;
  });
  return json.length + payload;
}

/** Segment indices as u32 LE (the `hash` request's payload). */
export function encodeList(list: readonly number[]): Uint8Array {
  const out = new Uint8Array(list.length * 4);
  const v = new DataView(out.buffer);
  list.forEach((x, k) => v.setUint32(k * 4, x, true));
  return out;
}

export function decodeList(data: Uint8Array): number[] {
  const v = new DataView(data.buffer, data.byteOffset, data.length);
  const out: number[] = [];
  for (let k = 0; k < data.length; k += 4) {
    const x = v.getUint32(k, true);
    if (out.length > 0 && x <= out[out.length - 1]!) throw bad('segment list not ascending');
    out.push(x);
  }
  return out;
}
