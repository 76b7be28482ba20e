import { StrataError } from '../errors.js';
import type { Store } from '../store/store.js';
import { FORMATS, MAGIC_MAP, newerVersion, readsVersion } from './magic.js';
import { RECORD_HEADER, RECORD_OVERHEAD, checksumOk, corrupt, decodeHead, encodeRecord } from './record.js';
import { ChunkReader } from './chunk-reader.js';

/**
 * The block map of one layer, kept as an append-only log of checksummed records on its own
 * store (`<layer>.map`). The first record names the layer and its block size; each later record
 * carries a batch of entries, written in one call by one flush, so a crash can tear only the
 * last record and recovery drops exactly the batch that was never acknowledged.
 *
 * Entry (28 bytes): block index (u64 LE), slot (i32 LE: >= 0 data slot, -2 known zero,
 * -1 absent), XXH3-128 of the block's data (16 bytes, zero for non-data entries).
 */
export const ENTRY_SIZE = 28;
export const SLOT_ABSENT = -1;
export const SLOT_ZERO = -2;
export const MAP_FORMAT_VERSION = FORMATS.mapLog.writes;
const KIND_HEADER = 0;
const KIND_ENTRIES = 1;
/** Largest payload we ever write; anything claiming more is not ours and is never allocated. */
export const MAX_MAP_PAYLOAD = 1 << 20;
const ENTRIES_PER_RECORD = Math.floor(MAX_MAP_PAYLOAD / ENTRY_SIZE);
const READ_CHUNK = 4 << 20;

export interface MapHeader {
  layer: string;
  blockSize: number;
}

/** Pending entries, packed, waiting for the next flush. */
export class EntryBuffer {
  bytes = new Uint8Array(ENTRY_SIZE * 64);
  count = 0;

  push(block: number, slot: number, hash: Uint8Array | null, hashOffset = 0): void {
    const at = this.count * ENTRY_SIZE;
    if (at + ENTRY_SIZE > this.bytes.length) {
      const next = new Uint8Array(this.bytes.length * 2);
      next.set(this.bytes);
      this.bytes = next;
    }
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + at, ENTRY_SIZE);
    v.setUint32(0, block % 2 ** 32, true);
    v.setUint32(4, Math.floor(block / 2 ** 32), true);
    v.setInt32(8, slot, true);
    if (hash) this.bytes.set(hash.subarray(hashOffset, hashOffset + 16), at + 12);
    else this.bytes.fill(0, at + 12, at + 28);
    this.count++;
  }

  clear(): void {
    this.count = 0;
  }

  /** Append every entry of `other` after these. */
  pushAll(other: EntryBuffer): void {
    const need = (this.count + other.count) * ENTRY_SIZE;
    if (need > this.bytes.length) {
      const next = new Uint8Array(Math.max(need, this.bytes.length * 2));
      next.set(this.bytes.subarray(0, this.count * ENTRY_SIZE));
      this.bytes = next;
    }
    this.bytes.set(other.bytes.subarray(0, other.count * ENTRY_SIZE), this.count * ENTRY_SIZE);
    this.count += other.count;
  }
}

export type EntrySink = (packed: Uint8Array, count: number) => void;

export class MapLog {
  /** byte offset where the next record goes */
  end: number;
  /** sequence number of the last valid record */
  seq: number;

  private constructor(readonly store: Store, end: number, seq: number, readonly header: MapHeader) {
    this.end = end;
    this.seq = seq;
  }

  /** Write a fresh log holding only its header record, and flush it. */
  static async create(store: Store, header: MapHeader): Promise<MapLog> {
    const payload = new TextEncoder().encode(JSON.stringify({ layer: header.layer, blockSize: header.blockSize }));
    const rec = encodeRecord({ magic: MAGIC_MAP, kind: KIND_HEADER, version: MAP_FORMAT_VERSION, seq: 0, length: payload.length }, payload);
    if (store.size !== 0) await store.truncate(0);
    await store.write(0, rec);
    await store.flush();
    return new MapLog(store, rec.length, 0, header);
  }

  /**
   * Read the whole log, handing each batch of entries to `sink`. A bad record followed by no
   * valid later record is a torn tail (the last flush never completed) and is cut off when the
   * store is writable; a bad record followed by a valid one is corruption and throws `corrupt`.
   */
  static async open(store: Store, expect: MapHeader, sink: EntrySink, what: string): Promise<MapLog> {
    const reader = new ChunkReader(store, READ_CHUNK);
    const first = await readRecord(reader, 0, -1);
    if (!first) {
      const version = await wholeRecordVersion(reader);
      if (version !== null && !readsVersion('mapLog', version)) throw newerVersion('mapLog', what, version);
    }
    if (!first || first.kind !== KIND_HEADER) throw corrupt(what, 'the map header record is missing or unreadable');
    let header: MapHeader;
    try {
      header = JSON.parse(new TextDecoder().decode(first.payload)) as MapHeader;
    } catch {
      throw corrupt(what, 'the map header is not valid JSON');
    }
    if (header.layer !== expect.layer || header.blockSize !== expect.blockSize) {
      throw corrupt(what, `the map belongs to layer ${String(header.layer)} with block size ${String(header.blockSize)}, expected ${expect.layer}/${expect.blockSize}`);
    }
    let at = first.next;
    let seq = 0;
    for (;;) {
      if (at >= store.size) break;
      const rec = await readRecord(reader, at, seq);
      if (!rec) {
        if (await anyValidAfter(reader, at + 1, seq)) throw corrupt(what, `a record at byte ${at} is damaged but later records exist`);
        break;
      }
      if (rec.kind !== KIND_ENTRIES || rec.payload.length % ENTRY_SIZE !== 0) throw corrupt(what, `unexpected record kind ${rec.kind} at byte ${at}`);
      sink(rec.payload, rec.payload.length / ENTRY_SIZE);
      seq = rec.seq;
      at = rec.next;
    }
    const log = new MapLog(store, at, seq, header);
    if (!store.readOnly && store.size > at) {
      // Cut the torn tail so stale bytes can never be mistaken for records later.
      await store.truncate(at);
      await store.flush();
    }
    return log;
  }

  /** Append the entries as records in one write. The caller flushes data first and the log after. */
  async append(entries: EntryBuffer): Promise<void> {
    if (entries.count === 0) return;
    const records = Math.ceil(entries.count / ENTRIES_PER_RECORD);
    const out = new Uint8Array(entries.count * ENTRY_SIZE + records * RECORD_OVERHEAD);
    let pos = 0;
    let seq = this.seq;
    for (let i = 0; i < entries.count; i += ENTRIES_PER_RECORD) {
      const n = Math.min(ENTRIES_PER_RECORD, entries.count - i);
      const payload = entries.bytes.subarray(i * ENTRY_SIZE, (i + n) * ENTRY_SIZE);
      seq++;
      encodeRecord({ magic: MAGIC_MAP, kind: KIND_ENTRIES, version: MAP_FORMAT_VERSION, seq, length: payload.length }, payload, out, pos);
      pos += RECORD_OVERHEAD + payload.length;
    }
    await this.store.write(this.end, out);
    this.end += out.length;
    this.seq = seq;
  }

  async flush(): Promise<void> {
    await this.store.flush();
  }
}


interface ReadRecord {
  kind: number;
  seq: number;
  payload: Uint8Array;
  next: number;
}

async function readRecord(reader: ChunkReader, at: number, prevSeq: number): Promise<ReadRecord | null> {
  const headBytes = await reader.get(at, RECORD_HEADER);
  if (!headBytes) return null;
  const head = decodeHead(headBytes, MAGIC_MAP, MAX_MAP_PAYLOAD);
  if (!head || head.version !== MAP_FORMAT_VERSION) return null;
  if (prevSeq >= 0 && head.seq !== prevSeq + 1) return null;
  const whole = await reader.get(at, RECORD_OVERHEAD + head.length);
  if (!whole || !checksumOk(whole, head.length)) return null;
  return { kind: head.kind, seq: head.seq, payload: whole.subarray(RECORD_HEADER, RECORD_HEADER + head.length).slice(), next: at + RECORD_OVERHEAD + head.length };
}

/** The version of an intact map record at offset 0 whatever its version, or null (no intact record there). */
async function wholeRecordVersion(reader: ChunkReader): Promise<number | null> {
  const headBytes = await reader.get(0, RECORD_HEADER);
  const head = headBytes && decodeHead(headBytes, MAGIC_MAP, MAX_MAP_PAYLOAD);
  if (!head) return null;
  const whole = await reader.get(0, RECORD_OVERHEAD + head.length);
  return whole && checksumOk(whole, head.length) ? head.version : null;
}

/** Is there any valid record with a later sequence number at or after `from`? (Corruption vs torn tail.) */
async function anyValidAfter(reader: ChunkReader, from: number, seq: number): Promise<boolean> {
  return (await nextValidAfter(reader, from, seq)) !== null;
}

/** The first valid record with a sequence number above `seq` starting at or after `from`, and where it starts. */
async function nextValidAfter(reader: ChunkReader, from: number, seq: number): Promise<{ at: number; rec: ReadRecord } | null> {
  const size = reader.store.size;
  const magic = new Uint8Array(4);
  new DataView(magic.buffer).setUint32(0, MAGIC_MAP, true);
  for (let at = from; at + RECORD_OVERHEAD <= size; ) {
    const n = Math.min(READ_CHUNK, size - at);
    const chunk = await reader.store.read(at, n);
    for (let i = 0; i + 4 <= chunk.length; i++) {
      if (chunk[i] !== magic[0] || chunk[i + 1] !== magic[1] || chunk[i + 2] !== magic[2] || chunk[i + 3] !== magic[3]) continue;
      const rec = await readRecord(reader, at + i, -1);
      if (rec && rec.seq > seq) return { at: at + i, rec };
    }
    at += Math.max(1, n - 3);
  }
  return null;
}

/** Size of the header record `MapLog.create` writes: a log no longer than this holds no entries. */
export function mapHeaderBytes(header: MapHeader): number {
  return RECORD_OVERHEAD + new TextEncoder().encode(JSON.stringify({ layer: header.layer, blockSize: header.blockSize })).length;
}

/** What a tolerant read of a map log found (see {@link scanMapLog}). */
export interface MapScan {
  /** the header record, or null when it is unreadable */
  header: MapHeader | null;
  /** valid entry records handed to the sink */
  records: number;
  /** byte ranges holding no valid record although a valid record (or the header) comes later: records lost there */
  gaps: { from: number; to: number }[];
  /** index (in sink order) of the first record after the last gap: entries from it on are certain */
  certainFrom: number;
  /** bytes after the last valid record: a torn tail after a crash, or the rest of a damaged file */
  tailBytes: number;
}

/**
 * Read every valid record of a damaged log, for salvage: unlike `MapLog.open` it never throws
 * on damage. A damaged stretch is skipped to the next valid record with a higher sequence
 * number, and reported as a gap (entries there are lost, so a block whose last entry comes
 * before the last gap may have changed). `sink` gets each entry record with its index.
 */
export async function scanMapLog(store: Store, sink: (packed: Uint8Array, count: number, record: number) => void): Promise<MapScan> {
  const reader = new ChunkReader(store, READ_CHUNK);
  const scan: MapScan = { header: null, records: 0, gaps: [], certainFrom: 0, tailBytes: 0 };
  let at = 0;
  let seq = 0;
  const first = await readRecord(reader, 0, -1);
  if (first && first.kind === KIND_HEADER && first.seq === 0) {
    try {
      const h = JSON.parse(new TextDecoder().decode(first.payload)) as MapHeader;
      if (typeof h.layer === 'string' && typeof h.blockSize === 'number') scan.header = { layer: h.layer, blockSize: h.blockSize };
    } catch {
      // an unreadable header is reported as a missing one
    }
    at = first.next;
  }
  if (!scan.header) {
    const next = await nextValidAfter(reader, 0, 0);
    if (!next) {
      scan.tailBytes = store.size;
      return scan;
    }
    scan.gaps.push({ from: 0, to: next.at });
    at = next.at;
  }
  for (;;) {
    if (at >= store.size) break;
    let rec = await readRecord(reader, at, seq);
    let recAt = at;
    if (!rec) {
      // From `at` itself: a valid record whose sequence number skips ahead also marks lost records.
      const next = await nextValidAfter(reader, at, seq);
      if (!next) {
        scan.tailBytes = store.size - at;
        break;
      }
      scan.gaps.push({ from: at, to: next.at });
      scan.certainFrom = scan.records;
      rec = next.rec;
      recAt = next.at;
    }
    if (rec.kind === KIND_ENTRIES && rec.payload.length % ENTRY_SIZE === 0) {
      sink(rec.payload, rec.payload.length / ENTRY_SIZE, scan.records++);
    } else {
      scan.gaps.push({ from: recAt, to: rec.next });
      scan.certainFrom = scan.records;
    }
    seq = rec.seq;
    at = rec.next;
  }
  return scan;
}

export function assertEntryBlock(block: number, what: string): void {
  if (!Number.isSafeInteger(block) || block < 0) throw new StrataError('corrupt', `${what}: bad block index ${block}.`);
}
