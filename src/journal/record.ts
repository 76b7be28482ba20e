import { StrataError } from '../errors.js';
import { FORMATS, MAGIC_WRITE_LOG } from '../format/magic.js';
import { RECORD_HEADER, RECORD_OVERHEAD, checksumOk, decodeHead, encodeRecord } from '../format/record.js';

/**
 * One record of the write log (src/journal/): a checksummed envelope (src/format/record.ts,
 * magic "SDWL") holding the record's description, followed — for writes — by the bytes written.
 * The envelope's sequence number is the record's log sequence number: 1, 2, 3, ... over the
 * whole log, one per record, in file order. Points in time (`seq:N`) are these numbers.
 *
 * Kinds and their descriptions (little-endian):
 * - HEAD (first record of every segment): JSON {journal, volume, blockSize, size, segment, base}.
 * - WRITE / ZERO: f64 time (ms since 1970), u32 piece count, u32 data length, then per piece
 *   {u64 volume offset, u32 length, u32 flags (1 = whole block), 16-byte XXH3-128 of its bytes
 *   (zero for ZERO)}. A piece never crosses a block boundary, so a view reads and checks at most
 *   one block per piece. WRITE's data follows the envelope: the pieces' bytes back to back.
 * - FLUSH: f64 time, u32 count, u64 durable, then count u64: log sequence numbers of writes
 *   logged before this record whose volume write had not ended when the flush fixed what it
 *   made durable (journal.ts uses them to redo after a crash). `durable` (stored plus one; 0:
 *   none) is the log seq of the last FLUSH whose sync had completed when this one was written: only such a FLUSH proves
 *   that the records before it were durable (a disk may keep an unsynced FLUSH record and lose
 *   the unsynced records before it; write-log.ts, scan).
 * - MARK: f64 time, u64 the point it marks plus one (a FLUSH's log seq; 0: the base), u32 label
 *   length, label (UTF-8).
 * - VOID: f64 time, u64 the log seq of a write the volume failed to store (views skip it).
 * - FOLD: see KIND_FOLD.
 * A HEAD carries `folded` when it starts a fold store.
 *
 * A record's data is checked by the pieces' hashes when a view reads it, not by the envelope:
 * opening a log reads only the descriptions.
 */
export const KIND_HEAD = 1;
export const KIND_WRITE = 2;
export const KIND_ZERO = 3;
export const KIND_FLUSH = 4;
export const KIND_MARK = 5;
export const KIND_VOID = 6;
/**
 * FOLD (only in a fold store, `journal.fold-<C>.log`): like WRITE, every piece a whole block,
 * holding the block as it was at point C, the point the log was folded to. Its envelope seq is C.
 */
export const KIND_FOLD = 7;
export const WRITE_LOG_VERSION = FORMATS.writeLog.writes;

export const PIECE_BYTES = 32;
export const PIECE_WHOLE = 1;
/** Largest description we write (a write of 1M pieces is far beyond any batch); anything claiming more is not ours. */
export const MAX_DESCRIPTION = 32 << 20;
/** Largest data one record carries (a write batch is at most 8 MiB; a restore batch the same). */
export const MAX_RECORD_DATA = 64 << 20;
export const MAX_LABEL_BYTES = 256;

export interface Piece {
  offset: number;
  length: number;
  whole: boolean;
  /** XXH3-128 of the bytes (all zero for a ZERO record) */
  hash: Uint8Array;
}

export interface HeadInfo {
  journal: string;
  volume: string;
  blockSize: number;
  size: number;
  segment: number;
  /** the snapshot holding the state before the log's first record */
  base: string;
  /** in a fold store's HEAD: the point C it holds the blocks at */
  folded?: number;
}

export type LogRecord =
  | { kind: typeof KIND_HEAD; seq: number; head: HeadInfo }
  | { kind: typeof KIND_WRITE | typeof KIND_ZERO | typeof KIND_FOLD; seq: number; time: number; pieces: Piece[]; dataLength: number }
  | { kind: typeof KIND_FLUSH; seq: number; time: number; inflight: number[]; durable: number }
  | { kind: typeof KIND_MARK; seq: number; time: number; point: number; label: string }
  | { kind: typeof KIND_VOID; seq: number; time: number; voided: number };

function envelope(kind: number, seq: number, description: Uint8Array, dataLength = 0): Uint8Array {
  const out = new Uint8Array(RECORD_OVERHEAD + description.length + dataLength);
  encodeRecord({ magic: MAGIC_WRITE_LOG, kind, version: WRITE_LOG_VERSION, seq, length: description.length }, description, out, 0);
  return out;
}

function u64(v: DataView, at: number, x: number): void {
  v.setUint32(at, x % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(x / 2 ** 32), true);
}

function getU64(v: DataView, at: number): number {
  const hi = v.getUint32(at + 4, true);
  if (hi >= 2 ** 21) throw new RangeError('u64 beyond 2^53');
  return hi * 2 ** 32 + v.getUint32(at, true);
}

export function encodeHead(seq: number, head: HeadInfo): Uint8Array {
  return envelope(KIND_HEAD, seq, new TextEncoder().encode(JSON.stringify(head)));
}

/**
 * A WRITE or ZERO record with room for its data: the caller copies the pieces' bytes to
 * `out.subarray(dataAt)` (WRITE only). Returns the record bytes and where the data goes.
 */
export function encodeWrite(kind: typeof KIND_WRITE | typeof KIND_ZERO | typeof KIND_FOLD, seq: number, time: number, pieces: readonly Piece[]): { bytes: Uint8Array; dataAt: number } {
  const d = new Uint8Array(16 + pieces.length * PIECE_BYTES);
  const v = new DataView(d.buffer);
  v.setFloat64(0, time, true);
  v.setUint32(8, pieces.length, true);
  let dataLength = 0;
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    const at = 16 + i * PIECE_BYTES;
    u64(v, at, p.offset);
    v.setUint32(at + 8, p.length, true);
    v.setUint32(at + 12, p.whole ? PIECE_WHOLE : 0, true);
    d.set(p.hash, at + 16);
    if (kind !== KIND_ZERO) dataLength += p.length;
  }
  v.setUint32(12, dataLength, true);
  const bytes = envelope(kind, seq, d, dataLength);
  return { bytes, dataAt: RECORD_OVERHEAD + d.length };
}

export function encodeFlush(seq: number, time: number, inflight: readonly number[], durable: number): Uint8Array {
  const d = new Uint8Array(20 + inflight.length * 8);
  const v = new DataView(d.buffer);
  v.setFloat64(0, time, true);
  v.setUint32(8, inflight.length, true);
  u64(v, 12, durable + 1);
  inflight.forEach((s, i) => u64(v, 20 + i * 8, s));
  return envelope(KIND_FLUSH, seq, d);
}

export function encodeMark(seq: number, time: number, point: number, label: string): Uint8Array {
  const l = new TextEncoder().encode(label);
  if (l.length > MAX_LABEL_BYTES) throw new StrataError('invalid-argument', `A mark label is at most ${MAX_LABEL_BYTES} bytes; "${label.slice(0, 40)}…" is ${l.length}.`);
  const d = new Uint8Array(20 + l.length);
  const v = new DataView(d.buffer);
  v.setFloat64(0, time, true);
  u64(v, 8, point + 1);
  v.setUint32(16, l.length, true);
  d.set(l, 20);
  return envelope(KIND_MARK, seq, d);
}

export function encodeVoid(seq: number, time: number, voided: number): Uint8Array {
  const d = new Uint8Array(16);
  const v = new DataView(d.buffer);
  v.setFloat64(0, time, true);
  u64(v, 8, voided);
  return envelope(KIND_VOID, seq, d);
}

/** The envelope at the start of `bytes`: null when no record of ours (of the expected seq) starts there. */
export function readEnvelope(bytes: Uint8Array, expectSeq: number | null): { kind: number; seq: number; version: number; descLength: number } | null {
  const head = decodeHead(bytes, MAGIC_WRITE_LOG, MAX_DESCRIPTION);
  if (!head) return null;
  if (expectSeq !== null && head.seq !== expectSeq) return null;
  return { kind: head.kind, seq: head.seq, version: head.version, descLength: head.length };
}

/** Total bytes of the envelope whose header is in `bytes` (without data). */
export function envelopeBytes(descLength: number): number {
  return RECORD_OVERHEAD + descLength;
}

export { RECORD_HEADER, RECORD_OVERHEAD, checksumOk };

/**
 * Decode a whole envelope (header, description, checksum: `bytes` holds exactly that) of a
 * known version. Throws a RangeError / SyntaxError on a malformed description; the caller turns
 * it into `corrupt` with the record's place.
 */
export function decodeRecord(bytes: Uint8Array, kind: number, seq: number, descLength: number): LogRecord {
  const d = bytes.subarray(RECORD_HEADER, RECORD_HEADER + descLength);
  const v = new DataView(d.buffer, d.byteOffset, d.length);
  switch (kind) {
    case KIND_HEAD: {
      const h = JSON.parse(new TextDecoder().decode(d)) as HeadInfo;
      if (typeof h !== 'object' || h === null || typeof h.journal !== 'string' || typeof h.volume !== 'string' || typeof h.base !== 'string') throw new RangeError('bad head');
      if (!Number.isSafeInteger(h.blockSize) || !Number.isSafeInteger(h.size) || !Number.isSafeInteger(h.segment)) throw new RangeError('bad head numbers');
      return { kind, seq, head: h };
    }
    case KIND_WRITE:
    case KIND_FOLD:
    case KIND_ZERO: {
      const time = v.getFloat64(0, true);
      const n = v.getUint32(8, true);
      const dataLength = v.getUint32(12, true);
      if (16 + n * PIECE_BYTES !== d.length || dataLength > MAX_RECORD_DATA) throw new RangeError('bad piece table');
      const pieces: Piece[] = [];
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const at = 16 + i * PIECE_BYTES;
        const p: Piece = { offset: getU64(v, at), length: v.getUint32(at + 8, true), whole: (v.getUint32(at + 12, true) & PIECE_WHOLE) !== 0, hash: d.slice(at + 16, at + 32) };
        if (p.length === 0) throw new RangeError('empty piece');
        sum += p.length;
        pieces.push(p);
      }
      if (kind !== KIND_ZERO && sum !== dataLength) throw new RangeError('data length disagrees with the pieces');
      if (kind === KIND_FOLD && pieces.some((p) => !p.whole)) throw new RangeError('a fold piece that is not a whole block');
      if (kind === KIND_ZERO && dataLength !== 0) throw new RangeError('a zero record with data');
      return { kind, seq, time, pieces, dataLength };
    }
    case KIND_FLUSH: {
      const n = v.getUint32(8, true);
      if (20 + n * 8 !== d.length) throw new RangeError('bad flush');
      const durable = getU64(v, 12) - 1;
      if (durable >= seq) throw new RangeError('a flush naming itself or a later one durable');
      const inflight: number[] = [];
      for (let i = 0; i < n; i++) inflight.push(getU64(v, 20 + i * 8));
      return { kind, seq, time: v.getFloat64(0, true), inflight, durable };
    }
    case KIND_MARK: {
      const n = v.getUint32(16, true);
      if (n > MAX_LABEL_BYTES || 20 + n !== d.length) throw new RangeError('bad mark');
      return { kind, seq, time: v.getFloat64(0, true), point: getU64(v, 8) - 1, label: new TextDecoder('utf-8', { fatal: true }).decode(d.subarray(20)) };
    }
    case KIND_VOID:
      if (d.length !== 16) throw new RangeError('bad void');
      return { kind, seq, time: v.getFloat64(0, true), voided: getU64(v, 8) };
    default:
      throw new RangeError(`unknown record kind ${kind}`);
  }
}
