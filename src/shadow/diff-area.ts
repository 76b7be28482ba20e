/**
 * On-store format of one shadow copy's differential area: a Store holding an append-only log.
 *
 *   [0, 4096)   header record (kind 1): JSON {format, version, id, salt, blockSize, volumeSize, created}
 *   4096 ...    batch records (kind 2), each 512-aligned:
 *                 record header + payload (padded to 512 bytes), then the preserved blocks
 *                 payload: salt u64 | XXH3-64 of the data u64 | runs u32 | blocks u32 | runs × (start u32, count u32)
 *               an optional seal record (kind 3, payload = salt) written on a clean close
 *
 * Records use src/format/record.ts (magic, kind, version, sequence, length, XXH3-64 checksum).
 * The writer appends one batch record with one store write and flushes it before the volume is
 * written, and never writes a record before the previous one is flushed, so after a crash only
 * the last record can be torn: replay checks the data hash of that one record only (opening is
 * O(records), not O(bytes)). A bad record followed by a valid later one (found by scanning the
 * 512-aligned offsets after it) is corruption, not a torn tail. The per-area random salt in
 * every record keeps volume data (which may be written by a guest) from ever posing as a record.
 */
import { StrataError } from '../errors.js';
import { AREA_FORMAT, FORMATS, MAGIC_DIFF_AREA, newerVersion } from '../format/magic.js';
import { checksumOk, corrupt, SHADOW_DAMAGE_ADVICE, decodeHead, encodeRecord, RECORD_HEADER, RECORD_OVERHEAD } from '../format/record.js';
import type { Store } from '../store/store.js';
import { xxh3_64 } from '../wasm/index.js';

export { AREA_FORMAT, MAGIC_DIFF_AREA };
export const AREA_VERSION = FORMATS.diffArea.writes;
export const AREA_HEADER_BYTES = 4096;
export const ALIGN = 512;
const KIND_HEADER = 1;
const KIND_BATCH = 2;
const KIND_SEAL = 3;
/** Runs in one batch record (bounds the payload at 512 KiB). */
export const MAX_RUNS = 65536;
/** Preserved bytes in one batch record; larger batches are split into several records. */
export const MAX_RECORD_DATA = 16 << 20;
const MAX_PAYLOAD = 24 + 8 * MAX_RUNS;
const BATCH_FIXED = 24;
/** Shadow copies work at sector granularity and up: 512 B .. 1 MiB blocks. */
export const MIN_SHADOW_BLOCK = 512;
export const MAX_SHADOW_BLOCK = 1 << 20;

export interface AreaHeader {
  format: typeof AREA_FORMAT;
  version: number;
  id: string;
  /** 16 hex digits: random per area, repeated in every record */
  salt: string;
  blockSize: number;
  volumeSize: number;
  created: string;
}

export function checkShadowBlockSize(bs: number): void {
  if (!Number.isInteger(bs) || bs < MIN_SHADOW_BLOCK || bs > MAX_SHADOW_BLOCK || (bs & (bs - 1)) !== 0) {
    throw new StrataError('invalid-argument', `Shadow block size ${bs} is not allowed: use a power of two from 512 to 1M.`);
  }
}

export function newSalt(): string {
  const b = new Uint8Array(8);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

function saltWords(salt: string): [number, number] {
  return [parseInt(salt.slice(8, 16), 16) >>> 0, parseInt(salt.slice(0, 8), 16) >>> 0];
}

export function encodeAreaHeader(h: AreaHeader): Uint8Array {
  const payload = new TextEncoder().encode(JSON.stringify(h));
  if (RECORD_OVERHEAD + payload.length > AREA_HEADER_BYTES) throw new StrataError('invalid-argument', 'Shadow copy name is too long for the diff area header.');
  const out = new Uint8Array(AREA_HEADER_BYTES);
  encodeRecord({ magic: MAGIC_DIFF_AREA, kind: KIND_HEADER, version: AREA_VERSION, seq: 0, length: payload.length }, payload, out);
  return out;
}

/** Parse and validate the header region; `corrupt` or `unsupported` when it is not a valid header. */
export function decodeAreaHeader(bytes: Uint8Array, what: string): AreaHeader {
  const head = decodeHead(bytes, MAGIC_DIFF_AREA, AREA_HEADER_BYTES - RECORD_OVERHEAD);
  if (!head || head.kind !== KIND_HEADER) throw corrupt(what, 'no diff area header', SHADOW_DAMAGE_ADVICE);
  if (head.version !== AREA_VERSION) throw newerVersion('diffArea', what, head.version);
  if (!checksumOk(bytes, head.length)) throw corrupt(what, 'header checksum mismatch', SHADOW_DAMAGE_ADVICE);
  let h: AreaHeader;
  try {
    h = JSON.parse(new TextDecoder().decode(bytes.subarray(RECORD_HEADER, RECORD_HEADER + head.length))) as AreaHeader;
  } catch {
    throw corrupt(what, 'header is not JSON', SHADOW_DAMAGE_ADVICE);
  }
  const ok =
    typeof h === 'object' && h !== null && h.format === AREA_FORMAT && h.version === AREA_VERSION && typeof h.id === 'string' &&
    typeof h.salt === 'string' && /^[0-9a-f]{16}$/.test(h.salt) && typeof h.created === 'string' &&
    Number.isSafeInteger(h.volumeSize) && h.volumeSize >= 0;
  if (!ok) throw corrupt(what, 'header fields', SHADOW_DAMAGE_ADVICE);
  try {
    checkShadowBlockSize(h.blockSize);
  } catch {
    throw corrupt(what, 'block size', SHADOW_DAMAGE_ADVICE);
  }
  if (Math.ceil(h.volumeSize / h.blockSize) > 2 ** 32) throw corrupt(what, 'volume size', SHADOW_DAMAGE_ADVICE);
  return h;
}

function pad(n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** Bytes before the data of a batch record with `runs` runs (header + payload + checksum, padded). */
export function batchHeadBytes(runs: number): number {
  return pad(RECORD_OVERHEAD + BATCH_FIXED + 8 * runs);
}

/**
 * Fill in the record at the start of `buf` (batchHeadBytes(runs) bytes, followed by the data):
 * runs is a flat [start, count]* list whose counts add up to the blocks in the data.
 */
export function sealBatch(buf: Uint8Array, seq: number, salt: string, runs: Uint32Array, runCount: number, blocks: number): void {
  const head = batchHeadBytes(runCount);
  const payload = new Uint8Array(BATCH_FIXED + 8 * runCount);
  const v = new DataView(payload.buffer);
  const [lo, hi] = saltWords(salt);
  v.setUint32(0, lo, true);
  v.setUint32(4, hi, true);
  v.setBigUint64(8, xxh3_64(buf.subarray(head)), true);
  v.setUint32(16, runCount, true);
  v.setUint32(20, blocks, true);
  for (let i = 0; i < 2 * runCount; i++) v.setUint32(BATCH_FIXED + 4 * i, runs[i]!, true);
  buf.fill(0, 0, head);
  encodeRecord({ magic: MAGIC_DIFF_AREA, kind: KIND_BATCH, version: AREA_VERSION, seq, length: payload.length }, payload, buf);
}

export function encodeSeal(seq: number, salt: string): Uint8Array {
  const payload = new Uint8Array(8);
  const v = new DataView(payload.buffer);
  const [lo, hi] = saltWords(salt);
  v.setUint32(0, lo, true);
  v.setUint32(4, hi, true);
  const out = new Uint8Array(ALIGN);
  encodeRecord({ magic: MAGIC_DIFF_AREA, kind: KIND_SEAL, version: AREA_VERSION, seq, length: 8 }, payload, out);
  return out;
}

interface Parsed {
  kind: number;
  seq: number;
  /** flat [start, count]* */
  runs: Uint32Array;
  blocks: number;
  dataHash: bigint;
  dataAt: number;
  next: number;
}

/** The record at `pos` if it is a valid record of this area (any seq ≥ minSeq), else null. */
async function parseAt(store: Store, pos: number, h: AreaHeader, minSeq: number, blocksInVolume: number): Promise<Parsed | null> {
  if (pos + RECORD_OVERHEAD > store.size) return null;
  const first = await store.read(pos, Math.min(ALIGN, store.size - pos));
  const head = decodeHead(first, MAGIC_DIFF_AREA, MAX_PAYLOAD);
  if (!head || head.version !== AREA_VERSION || head.seq < minSeq || (head.kind !== KIND_BATCH && head.kind !== KIND_SEAL)) return null;
  const recLen = RECORD_OVERHEAD + head.length;
  if (pos + recLen > store.size) return null;
  const rec = recLen <= first.length ? first : await store.read(pos, recLen);
  if (!checksumOk(rec, head.length)) return null;
  const v = new DataView(rec.buffer, rec.byteOffset + RECORD_HEADER, head.length);
  const [lo, hi] = saltWords(h.salt);
  if (head.length < 8 || v.getUint32(0, true) !== lo || v.getUint32(4, true) !== hi) return null;
  if (head.kind === KIND_SEAL) {
    if (head.length !== 8) return null;
    return { kind: KIND_SEAL, seq: head.seq, runs: new Uint32Array(0), blocks: 0, dataHash: 0n, dataAt: pos, next: pos };
  }
  // From here the record is authentic (checksum and salt agree): bad fields are corruption.
  const what = `Shadow diff area ${h.id}`;
  if (head.length < BATCH_FIXED) throw corrupt(what, `batch record ${head.seq} is too short`, SHADOW_DAMAGE_ADVICE);
  const runCount = v.getUint32(16, true);
  const blocks = v.getUint32(20, true);
  if (runCount === 0 || runCount > MAX_RUNS || head.length !== BATCH_FIXED + 8 * runCount) throw corrupt(what, `batch record ${head.seq} has a bad run count`, SHADOW_DAMAGE_ADVICE);
  if (blocks * h.blockSize > Math.max(MAX_RECORD_DATA, h.blockSize)) throw corrupt(what, `batch record ${head.seq} is too large`, SHADOW_DAMAGE_ADVICE);
  const runs = new Uint32Array(2 * runCount);
  let sum = 0;
  for (let i = 0; i < runCount; i++) {
    const s = v.getUint32(BATCH_FIXED + 8 * i, true);
    const c = v.getUint32(BATCH_FIXED + 8 * i + 4, true);
    if (c === 0 || s + c > blocksInVolume) throw corrupt(what, `batch record ${head.seq} names blocks outside the volume`, SHADOW_DAMAGE_ADVICE);
    runs[2 * i] = s;
    runs[2 * i + 1] = c;
    sum += c;
  }
  if (sum !== blocks) throw corrupt(what, `batch record ${head.seq} counts ${blocks} blocks but lists ${sum}`, SHADOW_DAMAGE_ADVICE);
  const dataAt = pos + batchHeadBytes(runCount);
  return { kind: KIND_BATCH, seq: head.seq, runs, blocks, dataHash: v.getBigUint64(8, true), dataAt, next: dataAt + blocks * h.blockSize };
}

/**
 * Check the data of the batch record at `at` (data at [dataAt, end)) against the XXH3-64 in its
 * record: 'checksum-mismatch' naming the area and the record when either is damaged.
 */
export async function verifyRecordData(store: Store, h: AreaHeader, at: number, dataAt: number, end: number): Promise<void> {
  const what = `diff area ${h.id}`;
  const r = await parseAt(store, at, h, 1, Math.ceil(h.volumeSize / h.blockSize)).catch(() => null);
  if (!r || r.kind !== KIND_BATCH || r.dataAt !== dataAt || r.next !== end) {
    throw new StrataError('checksum-mismatch', `The record at byte ${at} of ${what} is damaged (its header does not match its checksum).`);
  }
  if (end > store.size || xxh3_64(await store.read(dataAt, end - dataAt)) !== r.dataHash) {
    throw new StrataError('checksum-mismatch', `The data of record ${r.seq} of ${what} (bytes ${dataAt}..${end - 1}) does not match its checksum.`);
  }
}

async function dataOk(store: Store, r: Parsed, bs: number): Promise<boolean> {
  if (r.next > store.size) return false;
  return xxh3_64(await store.read(r.dataAt, r.blocks * bs)) === r.dataHash;
}

export interface ReplayResult {
  /** offset where the next record goes */
  end: number;
  /** sequence number of the next record */
  seq: number;
  /** the log ended with a seal (the writer closed it cleanly) */
  sealed: boolean;
}

/**
 * Replay the log of a diff area: `onRun(start, count, dataOffset)` for every preserved run, in
 * order. `upTo` (a published end from the writer) stops there without any tail checks; without
 * it the tail is examined as after a crash (see the file comment). `lenient` stops at the first
 * bad record whatever follows (for areas whose copies are being given up as lost). `onRecord`
 * gets each batch record's start, data start and end (for verify-on-read).
 */
export async function replayArea(
  store: Store,
  h: AreaHeader,
  onRun: (start: number, count: number, offset: number) => void,
  upTo?: number,
  lenient = false,
  onRecord?: (at: number, dataAt: number, end: number) => void,
): Promise<ReplayResult> {
  const bs = h.blockSize;
  const blocksInVolume = Math.ceil(h.volumeSize / bs);
  const what = `Shadow diff area ${h.id}`;
  let pos = AREA_HEADER_BYTES;
  let seq = 1;
  const batch: Parsed[] = [];
  const flush = (): void => {
    for (const r of batch) {
      onRecord?.(r.dataAt - batchHeadBytes(r.runs.length / 2), r.dataAt, r.next);
      let at = r.dataAt;
      for (let i = 0; i < r.runs.length; i += 2) {
        onRun(r.runs[i]!, r.runs[i + 1]!, at);
        at += r.runs[i + 1]! * bs;
      }
    }
    batch.length = 0;
  };
  let sealed = false;
  let last: Parsed | null = null;
  while (upTo === undefined || pos < upTo) {
    const r = await parseAt(store, pos, h, seq, blocksInVolume).catch((e: unknown) => {
      if (lenient) return null;
      throw e;
    });
    if (!r || r.seq !== seq) {
      if (upTo !== undefined) throw corrupt(what, `record ${seq} at ${pos} is missing`, SHADOW_DAMAGE_ADVICE);
      break;
    }
    if (r.kind === KIND_SEAL) {
      sealed = true;
      break;
    }
    if (last) batch.push(last);
    if (batch.length >= 256) flush();
    last = r;
    pos = r.next;
    seq++;
  }
  if (upTo !== undefined) {
    if (last) batch.push(last);
    flush();
    return { end: pos, seq, sealed: false };
  }
  if (!sealed) {
    // Not a clean end: anything valid later means the log is damaged, not torn.
    if (!lenient && (await laterRecord(store, pos + ALIGN, h, seq, blocksInVolume))) throw corrupt(what, `record ${seq} at ${pos} is damaged but later records exist`, SHADOW_DAMAGE_ADVICE);
    if (last && !(await dataOk(store, last, bs))) {
      // The last record's data never fully landed: a torn write. It was never published.
      seq--;
      pos = last.dataAt - batchHeadBytes(last.runs.length / 2);
      last = null;
    }
  } else if (last && !(await dataOk(store, last, bs))) {
    throw corrupt(what, `the data of record ${last.seq} does not match its checksum`, SHADOW_DAMAGE_ADVICE);
  }
  if (last) batch.push(last);
  flush();
  return { end: pos, seq, sealed };
}

/** Is there a valid record of this area with seq ≥ minSeq at any 512-aligned offset from `from`? */
async function laterRecord(store: Store, from: number, h: AreaHeader, minSeq: number, blocksInVolume: number): Promise<boolean> {
  const chunk = 1 << 20;
  for (let at = from; at + RECORD_OVERHEAD <= store.size; at += chunk) {
    const buf = await store.read(at, Math.min(chunk, store.size - at));
    const v = new DataView(buf.buffer, buf.byteOffset, buf.length);
    for (let o = 0; o + 4 <= buf.length; o += ALIGN) {
      if (v.getUint32(o, true) !== MAGIC_DIFF_AREA) continue;
      try {
        if (await parseAt(store, at + o, h, minSeq, blocksInVolume)) return true;
      } catch {
        return true; // authentic but malformed: damage either way
      }
    }
  }
  return false;
}
