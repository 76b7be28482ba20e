/**
 * Length-prefixed frames for stream transports (a local socket): one message per frame.
 *
 * ```
 * u32 BE  n      bytes after this field (4 + j + payload)
 * u32 BE  j      bytes of JSON
 * j bytes        the message as UTF-8 JSON, without its `data` field
 * n-4-j bytes    the message's `data` (bytes), when it has one ("bin": 1 in the JSON)
 * ```
 *
 * The reader is fed untrusted bytes: lengths are checked against fixed bounds before anything
 * is buffered or allocated, and a bad frame is a `corrupt` error (the connection is then closed).
 */
import { StrataError } from '../errors.js';
import { LIMITS } from './protocol.js';

/** Largest JSON part of a frame. */
export const MAX_JSON = 64 << 10;
/** Largest frame after the length field. */
export const MAX_FRAME = 4 + MAX_JSON + LIMITS.maxIo;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** One frame holding `msg` (its `data` field, if bytes, travels as the raw payload). */
export function encodeFrame(msg: object): Uint8Array {
  const { data, ...rest } = msg as { data?: unknown };
  const payload = data instanceof Uint8Array ? data : undefined;
  const json = encoder.encode(JSON.stringify(payload ? { ...rest, bin: 1 } : msg));
  if (json.length > MAX_JSON) throw new StrataError('invalid-argument', `A message of ${json.length} bytes of JSON is over the ${MAX_JSON}-byte limit.`);
  const plen = payload?.length ?? 0;
  if (plen > LIMITS.maxIo) throw new StrataError('invalid-argument', `A payload of ${plen} bytes is over the ${LIMITS.maxIo}-byte limit; split it.`);
  const out = new Uint8Array(8 + json.length + plen);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 4 + json.length + plen);
  dv.setUint32(4, json.length);
  out.set(json, 8);
  if (payload) out.set(payload, 8 + json.length);
  return out;
}

function corrupt(what: string): StrataError {
  return new StrataError('corrupt', `A frame from the peer is malformed (${what}); the connection is closed.`);
}

/**
 * Incremental reader: `push` chunks as they arrive, get the complete messages. After an error
 * the reader stays failed (the stream has lost its framing).
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private need = -1;
  private failed: StrataError | undefined;

  /** Bytes held waiting for the rest of a frame (at most 8 + MAX_FRAME plus one chunk). */
  get pending(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): unknown[] {
    if (this.failed) throw this.failed;
    const out: unknown[] = [];
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    try {
      for (;;) {
        if (this.need < 0) {
          if (this.buffered < 4) break;
          const h = this.take(4, false);
          const n = new DataView(h.buffer, h.byteOffset, 4).getUint32(0);
          if (n < 4 || n > MAX_FRAME) throw corrupt(`frame length ${n}`);
          this.need = n;
        }
        if (this.buffered < 4 + this.need) break;
        const frame = this.take(4 + this.need, true).subarray(4);
        this.need = -1;
        out.push(decodeBody(frame));
      }
    } catch (e) {
      this.failed = e instanceof StrataError ? e : corrupt(String(e));
      this.chunks = [];
      this.buffered = 0;
      throw this.failed;
    }
    return out;
  }

  /** The first `n` buffered bytes (one copy at most); `consume` removes them. */
  private take(n: number, consume: boolean): Uint8Array {
    let result: Uint8Array;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      result = first.subarray(0, n);
    } else {
      result = new Uint8Array(n);
      let at = 0;
      for (const c of this.chunks) {
        const k = Math.min(c.length, n - at);
        result.set(c.subarray(0, k), at);
        at += k;
        if (at === n) break;
      }
    }
    if (!consume) return result;
    let left = n;
    let drop = 0;
    while (left > 0) {
      const c = this.chunks[drop]!;
      if (c.length <= left) {
        drop++;
        left -= c.length;
      } else {
        this.chunks[drop] = c.subarray(left);
        left = 0;
      }
    }
    this.chunks.splice(0, drop);
    this.buffered -= n;
    return result;
  }
}

function decodeBody(frame: Uint8Array): unknown {
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const j = dv.getUint32(0);
  if (j > MAX_JSON || 4 + j > frame.length) throw corrupt(`JSON length ${j}`);
  let msg: unknown;
  try {
    msg = JSON.parse(decoder.decode(frame.subarray(4, 4 + j)));
  } catch {
    throw corrupt('invalid JSON');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw corrupt('not an object');
  const o = msg as Record<string, unknown>;
  const payload = frame.subarray(4 + j);
  if (o.bin === 1) {
    delete o.bin;
    o.data = payload;
  } else if (payload.length > 0 || 'data' in o) {
    throw corrupt('payload without bin flag');
  }
  return o;
}
