import { StrataError } from '../errors.js';
import { newerVersion, readsVersion } from '../format/magic.js';
import { corrupt } from '../format/record.js';
import { ChunkReader } from '../format/chunk-reader.js';
import { xxh3_128 } from '../wasm/index.js';
import type { Store, StoreNamespace } from '../store/store.js';
import {
  KIND_FLUSH,
  KIND_FOLD,
  KIND_HEAD,
  KIND_WRITE,
  RECORD_HEADER,
  checksumOk,
  decodeRecord,
  encodeFlush,
  encodeHead,
  envelopeBytes,
  readEnvelope,
  type HeadInfo,
  type LogRecord,
} from './record.js';

/**
 * The write log on its stores: segments `journal.000001.log`, `journal.000002.log`, ... in a
 * namespace (the volume's own, or another one). Records are appended in log-sequence order;
 * appends are batched (one store write at a time per segment, carrying everything appended
 * meanwhile), and `commit` appends a FLUSH record and syncs: everything before it is durable
 * when it resolves.
 *
 * Opening reads every record's description (not the data) and hands it to a visitor. Damage:
 * - a bad record with no valid FLUSH record after it in the log is a torn tail: a crash during
 *   writes that no completed sync covered. The log is cut back to its last FLUSH record before
 *   the damage (writable opens truncate it; read-only opens just stop there);
 * - a bad record followed by a valid FLUSH record that names, as synced when it was written, a
 *   FLUSH at or after the bad record is damage in the middle of what was durable: `corrupt`,
 *   naming the record's sequence number, segment and byte. A later FLUSH alone proves nothing:
 *   a crash during a sync may keep the FLUSH record's write and lose earlier unsynced ones.
 * Records after the last FLUSH (writes no flush covered) are cut the same way: the volume never
 * made them durable either (its flush syncs the log first; see journal.ts).
 */
export const SEGMENT_PREFIX = 'journal.';
export const SEGMENT_SUFFIX = '.log';
const SEGMENT_NAME = /^journal\.([0-9]{6,9})\.log$/;
/** A fold store: the blocks the log touched up to point C, at C (checkpoint.ts). */
const FOLD_NAME = /^journal\.fold-([0-9]{15})\.log$/;
/** Segment number under which the fold store's data is read. */
export const FOLD_SEGMENT = 0;
/** A segment is closed and the next one started at the first commit after it reaches this size. */
export const SEGMENT_BYTES = 64 << 20;

export function foldName(c: number): string {
  return `journal.fold-${String(c).padStart(15, '0')}.log`;
}

/** Is this store name part of a write log (a segment or a fold)? */
export function isLogStore(name: string): boolean {
  return SEGMENT_NAME.test(name) || FOLD_NAME.test(name);
}
const READ_CHUNK = 1 << 20;

export function segmentName(n: number): string {
  return `${SEGMENT_PREFIX}${String(n).padStart(6, '0')}${SEGMENT_SUFFIX}`;
}

/** Where a record is: its segment and byte offset there. */
export interface Place {
  segment: number;
  pos: number;
}

export type Visitor = (rec: LogRecord, place: Place, dataAt: number) => void;

interface Segment {
  n: number;
  store: Store;
  /** bytes appended (assigned), written or not */
  end: number;
  /** seq of its HEAD (= of its first record) */
  first: number;
  /** written since its last sync */
  dirty?: boolean;
}

export interface OpenedLog {
  log: WriteLog;
  head: HeadInfo;
  /** log seq of the last FLUSH kept (-1: none, only the head: the base) */
  lastSeq: number;
  /** the records cut off as a torn tail (0 when none) and why */
  cut: { records: number; bytes: number; reason: string } | null;
  /** read-only opens of a log damaged before durable records: where, and what can be read */
  damaged?: string;
}

export class WriteLog {
  private readonly segments: Segment[] = [];
  /** next log sequence number */
  nextSeq: number;
  /** appended bytes not yet handed to the store (current segment) */
  private queued: Uint8Array[] = [];
  private queuedBytes = 0;
  private queuedAt = 0;
  private writing: Promise<void> | null = null;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];
  private commitTail: Promise<void> = Promise.resolve();
  /** log seq of the last FLUSH (or head) known synced: each FLUSH record names it */
  private durableSeq = -1;
  /** the first failure: every later append and commit fails with it */
  failure: unknown = null;
  /** the fold store (checkpoint.ts): the blocks at point `c`; null when the log was never folded */
  fold: { c: number; store: Store } | null = null;
  /** roll over to a new segment once the current one reaches this many bytes */
  segmentBytes = SEGMENT_BYTES;
  private head!: HeadInfo;

  private constructor(readonly ns: StoreNamespace, nextSeq: number) {
    this.nextSeq = nextSeq;
  }

  get current(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  /** Bytes of log on the stores (all segments). */
  get bytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.end;
    return n;
  }

  /** Create a new log (segment 1 holding only its HEAD record, synced). */
  static async create(ns: StoreNamespace, head: Omit<HeadInfo, 'segment'>): Promise<WriteLog> {
    for (const name of await ns.list()) {
      if (isLogStore(name)) throw new StrataError('exists', `A write log already exists in ${ns.label ?? 'this namespace'} (${name}); remove it first (\`stratadisk journal disable\`) or choose another place.`);
    }
    const log = new WriteLog(ns, 0);
    const store = await ns.open(segmentName(1), { create: true });
    // a HEAD shares its number with the record after it: it is not a point (record 0 is the first write)
    log.head = { ...head, segment: 1 };
    const rec = encodeHead(log.nextSeq, log.head);
    await store.write(0, rec);
    await store.flush();
    await ns.sync();
    log.segments.push({ n: 1, store, end: rec.length, first: 0 });
    log.queuedAt = rec.length;
    log.durableSeq = -1;
    return log;
  }

  /** Open the log, handing every kept record to `visit` in order. */
  static async open(ns: StoreNamespace, readOnly: boolean, visit: Visitor): Promise<OpenedLog> {
    const all = await ns.list();
    const names = all.filter((n) => SEGMENT_NAME.test(n)).sort();
    if (names.length === 0) throw new StrataError('not-found', `No write log in ${ns.label ?? 'this namespace'}: enable one with \`stratadisk journal enable DIR\`.`);
    const log = new WriteLog(ns, 0);
    const stores: { n: number; store: Store }[] = [];
    try {
      await log.openFold(all.filter((n) => FOLD_NAME.test(n)).sort().reverse(), readOnly, visit);
      for (const name of names) stores.push({ n: Number(SEGMENT_NAME.exec(name)![1]), store: await ns.open(name, { readOnly }) });
      return await log.scan(stores, readOnly, visit);
    } catch (e) {
      for (const s of stores) await s.store.close().catch(() => {});
      await log.fold?.store.close().catch(() => {});
      throw e;
    }
  }

  /**
   * Take the newest complete fold store (HEAD, FOLD records, a FLUSH of seq C); an incomplete
   * newer one (a fold interrupted by a crash) and older ones are deleted on writable opens.
   */
  private async openFold(names: string[], readOnly: boolean, visit: Visitor): Promise<void> {
    for (const name of names) {
      const store = await this.ns.open(name, { readOnly });
      const recs: { rec: LogRecord; place: Place; dataAt: number }[] = [];
      const reader = new ChunkReader(store, READ_CHUNK);
      let pos = 0;
      let complete = false;
      let c = -1;
      while (pos < store.size) {
        const r = await readOne(reader, pos, null);
        if (typeof r === 'string') break;
        if (pos === 0) {
          if (r.rec.kind !== KIND_HEAD || r.rec.head.folded === undefined) break;
          c = r.rec.head.folded;
        } else if (r.rec.kind === KIND_FLUSH && r.rec.seq === c) {
          complete = pos + r.envelope === store.size;
          break;
        } else if (r.rec.kind !== KIND_FOLD || r.rec.seq !== c) break;
        recs.push({ rec: r.rec, place: { segment: FOLD_SEGMENT, pos }, dataAt: pos + r.envelope });
        pos += r.envelope + r.dataLength;
      }
      if (complete && this.fold === null) {
        this.fold = { c, store };
        for (const x of recs) visit(x.rec, x.place, x.dataAt);
        continue;
      }
      await store.close();
      if (!readOnly) await this.ns.delete(name);
    }
  }

  private async scan(stores: { n: number; store: Store }[], readOnly: boolean, visit: Visitor): Promise<OpenedLog> {
    let head: HeadInfo | null = null;
    let expect: number | null = null;
    /** records and places seen since the last FLUSH: delivered only once a FLUSH covers them */
    let held: { rec: LogRecord; place: Place; dataAt: number }[] = [];
    let keep: Place | null = null; // where the log ends: just after the last FLUSH
    /** the last point kept: the seq of the last FLUSH (-1: only the head, the base) */
    let keepSeq = -1;
    const firsts = new Map<number, number>();
    let damage: { place: Place; seq: number; why: string } | null = null;
    for (let i = 0; i < stores.length && !damage; i++) {
      const { n, store } = stores[i]!;
      if (n !== (stores[0]!.n) + i) {
        damage = { place: { segment: n, pos: 0 }, seq: expect ?? 0, why: `segment ${segmentName(stores[0]!.n + i)} is missing` };
        break;
      }
      const reader = new ChunkReader(store, READ_CHUNK);
      let pos = 0;
      while (pos < store.size) {
        const place = { segment: n, pos };
        const r = await readOne(reader, pos, expect);
        if (typeof r === 'string') {
          damage = { place, seq: expect ?? 0, why: r };
          break;
        }
        if (r.rec.kind === KIND_HEAD) {
          if (pos !== 0 || r.rec.head.segment !== n || (head !== null && r.rec.head.journal !== head.journal)) {
            damage = { place, seq: expect ?? 0, why: 'a segment header out of place' };
            break;
          }
          head ??= r.rec.head;
          firsts.set(n, r.rec.seq);
          // the log starts where the fold ends (a fold covers whole segments)
          if (i === 0 && this.fold && r.rec.seq > this.fold.c + 1) {
            throw corrupt(`The write log in ${this.ns.label ?? 'its namespace'}`, `records ${this.fold.c + 1} to ${r.rec.seq - 1} are missing after its fold`, 'Disable the log (`stratadisk journal disable DIR --force`) and enable a new one.');
          }
        } else if (pos === 0) {
          damage = { place, seq: expect ?? 0, why: 'the segment does not start with its header' };
          break;
        }
        held.push({ rec: r.rec, place, dataAt: pos + r.envelope });
        expect = r.rec.kind === KIND_HEAD ? r.rec.seq : r.rec.seq + 1;
        pos += r.envelope + r.dataLength;
        // a FLUSH keeps all before it; so does the first HEAD, and a later segment's HEAD when
        // nothing unflushed comes before it (a roll right after a commit)
        if (r.rec.kind === KIND_FLUSH || (r.rec.kind === KIND_HEAD && (keep === null || held.length === 1))) {
          for (const h of held) visit(h.rec, h.place, h.dataAt);
          held = [];
          keep = { segment: n, pos };
          if (r.rec.kind === KIND_FLUSH) keepSeq = r.rec.seq;
          else if (i === 0) keepSeq = Math.max(r.rec.seq - 1, this.fold?.c ?? -1);
        }
      }
    }
    if (head) this.head = head;
    if (!head || !keep) throw corrupt(`The write log in ${this.ns.label ?? 'its namespace'}`, 'its first segment has no readable header', 'Disable the log (`stratadisk journal disable DIR --force`) and enable a new one.');
    if (damage && (await this.flushAfter(stores, damage.place, damage.seq))) {
      const where = `record ${damage.seq} (${segmentName(damage.place.segment)}, byte ${damage.place.pos}: ${damage.why})`;
      if (!readOnly) {
        throw new StrataError(
          'corrupt',
          `The write log in ${this.ns.label ?? 'its namespace'} is damaged at ${where}, before records that were durable. The volume itself is not affected. Points up to record ${keepSeq} can still be read (read-only: \`stratadisk export DIR@seq:${keepSeq} OUT\`); to go on writing, drop the log (\`stratadisk journal disable DIR --force\`) and enable a new one.`,
        );
      }
      // read-only: the points before the damage stay readable; nothing is cut
      for (const { n, store } of stores) {
        if (n <= keep.segment) this.segments.push({ n, store, end: n === keep.segment ? keep.pos : store.size, first: firsts.get(n) ?? 0 });
        else await store.close();
      }
      this.nextSeq = keepSeq + 1;
      this.queuedAt = keep.pos;
      return { log: this, head, lastSeq: keepSeq, cut: null, damaged: `damaged at ${where}; points after record ${keepSeq} cannot be read` };
    }
    // keep: cut everything after the last FLUSH (a torn tail, or writes no flush covered)
    let cutBytes = 0;
    let cutRecords = held.filter((h) => h.rec.kind !== KIND_HEAD).length;
    for (const { n, store } of stores) {
      if (n < keep.segment) continue;
      const end = n === keep.segment ? keep.pos : 0;
      cutBytes += store.size - end;
      if (!readOnly && store.size > end) {
        await store.truncate(end);
        await store.flush();
      }
    }
    if (damage) cutRecords++;
    for (const { n, store } of stores) {
      if (n <= keep.segment) this.segments.push({ n, store, end: n === keep.segment ? keep.pos : store.size, first: firsts.get(n) ?? 0 });
      else if (!readOnly) {
        await store.close();
        await this.ns.delete(segmentName(n));
      } else await store.close();
    }
    this.nextSeq = keepSeq + 1;
    this.durableSeq = keepSeq;
    this.queuedAt = keep.pos;
    if (this.fold && !readOnly) await this.dropFolded(this.fold.c);
    const reason = damage ? `damaged at record ${damage.seq} (${damage.why}) after the last flush` : 'written after the last flush';
    return { log: this, head, lastSeq: keepSeq, cut: cutBytes > 0 || cutRecords > 0 ? { records: cutRecords, bytes: cutBytes, reason } : null };
  }

  /** Is there a valid FLUSH record anywhere after a damaged place? Looks at every byte (only ever run on damage). */
  private async flushAfter(stores: { n: number; store: Store }[], from: Place, seq: number): Promise<boolean> {
    for (const { n, store } of stores) {
      if (n < from.segment) continue;
      const reader = new ChunkReader(store, READ_CHUNK);
      for (let pos = n === from.segment ? from.pos + 1 : 0; pos + RECORD_HEADER <= store.size; pos++) {
        const bytes = await reader.get(pos, RECORD_HEADER);
        const env = bytes && readEnvelope(bytes, null);
        if (!env || env.kind !== KIND_FLUSH || env.seq <= seq) continue;
        const r = await readOne(reader, pos, env.seq);
        // only a FLUSH written after a sync that covered the damaged record proves it was durable
        if (typeof r !== 'string' && r.rec.kind === KIND_FLUSH && r.rec.durable >= seq) return true;
      }
    }
    return false;
  }

  /**
   * Append a record (its log seq already in it: take it with `nextSeq++` in the same turn).
   * Resolves once the store write carrying it ended. Returns where it is.
   */
  append(bytes: Uint8Array): { place: Place; written: Promise<void> } {
    if (this.failure !== null) return { place: { segment: this.current.n, pos: -1 }, written: Promise.reject(this.failure) };
    const seg = this.current;
    const place = { segment: seg.n, pos: seg.end };
    seg.end += bytes.length;
    this.queued.push(bytes);
    this.queuedBytes += bytes.length;
    const written = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.writing === null) this.writing = this.drain();
    return { place, written };
  }

  /** Write what is queued, one store write at a time, until nothing is. */
  private async drain(): Promise<void> {
    // let the appends of this turn join the first write
    await Promise.resolve();
    while (this.queued.length > 0) {
      const parts = this.queued;
      const waiters = this.waiters;
      const at = this.queuedAt;
      const total = this.queuedBytes;
      this.queued = [];
      this.waiters = [];
      this.queuedBytes = 0;
      this.queuedAt = at + total;
      let buf: Uint8Array;
      if (parts.length === 1) buf = parts[0]!;
      else {
        buf = new Uint8Array(total);
        let p = 0;
        for (const x of parts) {
          buf.set(x, p);
          p += x.length;
        }
      }
      try {
        if (this.failure !== null) throw this.failure;
        const seg = this.current;
        seg.dirty = true;
        await seg.store.write(at, buf);
        for (const w of waiters) w.resolve();
      } catch (e) {
        this.failure ??= e;
        for (const w of waiters) w.reject(this.failure);
      }
    }
    this.writing = null;
  }

  /** Resolves when everything appended so far was handed to the store (or failed). */
  private async written(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /**
   * Append a FLUSH record naming `inflight` (taken in this same turn) and make the log durable
   * up to it. Commits run one at a time, in order. Returns the FLUSH's log seq at once and the
   * promise of its durability.
   */
  commit(inflight: readonly number[]): { seq: number; durable: Promise<void> } {
    const seq = this.nextSeq++;
    const { written } = this.append(encodeFlush(seq, Date.now(), inflight, this.durableSeq));
    const prev = this.commitTail;
    const durable = prev.then(async () => {
      await written;
      await this.written();
      if (this.failure !== null) throw this.failure;
      try {
        // every segment written since its last sync (the one before a roll may still be)
        for (const seg of this.segments) {
          if (!seg.dirty) continue;
          seg.dirty = false;
          await seg.store.flush();
        }
        if (this.current.end >= this.segmentBytes) await this.roll();
      } catch (e) {
        this.failure ??= e;
        throw e;
      }
      if (seq > this.durableSeq) this.durableSeq = seq;
    });
    this.commitTail = durable.catch(() => {});
    return { seq, durable };
  }

  /** Read `target.length` data bytes at a place. */
  async readData(segment: number, pos: number, target: Uint8Array): Promise<void> {
    if (segment === FOLD_SEGMENT && this.fold) return this.fold.store.readInto(pos, target);
    const seg = this.segments.find((s) => s.n === segment);
    if (!seg) throw new StrataError('not-found', `Segment ${segmentName(segment)} of the write log is no longer there (folded into the base?); open the view again.`);
    await seg.store.readInto(pos, target);
  }

  /** Read logged bytes and check them against their XXH3-128: false when they do not match (damage). */
  async readChecked(segment: number, pos: number, target: Uint8Array, hash: Uint8Array): Promise<boolean> {
    await this.readData(segment, pos, target);
    const h = xxh3_128(target);
    for (let i = 0; i < 16; i++) if (h[i] !== hash[i]) return false;
    return true;
  }

  async close(): Promise<void> {
    await this.written();
    for (const s of this.segments) await s.store.close().catch(() => {});
    this.segments.length = 0;
    await this.fold?.store.close().catch(() => {});
    this.fold = null;
  }

  /** Delete every segment (the log is being disabled): closes it first. */
  async destroy(): Promise<void> {
    await this.close();
    await deleteLog(this.ns);
  }

  /** Cut the log after `end` (the end of a FLUSH record): later bytes and segments go. Before any append. */
  async truncateAfter(end: Place): Promise<void> {
    for (const seg of [...this.segments]) {
      if (seg.n < end.segment) continue;
      if (seg.n === end.segment) {
        await seg.store.truncate(end.pos);
        await seg.store.flush();
        seg.end = end.pos;
      } else {
        await seg.store.close();
        await this.ns.delete(segmentName(seg.n));
        this.segments.splice(this.segments.indexOf(seg), 1);
      }
    }
    await this.ns.sync();
  }

  // ---- segments and folds (checkpoint.ts) ----

  /** Segments as [number, first seq, bytes], oldest first. */
  segmentList(): { n: number; first: number; bytes: number }[] {
    return this.segments.map((s) => ({ n: s.n, first: s.first, bytes: s.end }));
  }

  /**
   * Start the next segment (after a commit): its HEAD takes the next seq. Appends made meanwhile
   * stay in the old segment, before the switch, which happens in one turn once they are written.
   */
  private async roll(): Promise<void> {
    const n = this.current.n + 1;
    const store = await this.ns.open(segmentName(n), { create: true });
    try {
      if (store.size > 0) await store.truncate(0);
      while (this.writing || this.queued.length > 0) await (this.writing ?? Promise.resolve());
      // no await from here to the switch: no append can slip between
      const first = this.nextSeq;
      const rec = encodeHead(first, { ...this.head, segment: n });
      this.segments.push({ n, store, end: rec.length, first });
      this.queued.push(rec);
      this.queuedBytes += rec.length;
      this.queuedAt = 0;
      this.writing ??= this.drain();
    } catch (e) {
      await store.close().catch(() => {});
      throw e;
    }
    await this.written();
    await store.flush();
    await this.ns.sync();
  }

  /**
   * Write a fold store for point `c` (HEAD, the FOLD records `produce` appends, a FLUSH of seq c), durable,
   * then drop every segment whose records are all at or before c and any older fold.
   */
  async writeFold(c: number, produce: (append: (record: Uint8Array) => Promise<number>) => Promise<void>, switched: () => void): Promise<void> {
    const name = foldName(c);
    const store = await this.ns.open(name, { create: true });
    try {
      if (store.size > 0) await store.truncate(0);
      let pos = 0;
      const head = encodeHead(c, { ...this.head, segment: FOLD_SEGMENT, folded: c });
      await store.write(pos, head);
      pos += head.length;
      // `append` returns where the record starts in the fold store
      await produce(async (r) => {
        const at = pos;
        pos += r.length;
        await store.write(at, r);
        return at;
      });
      await store.write(pos, encodeFlush(c, Date.now(), [], -1));
      await store.flush();
      await this.ns.sync();
    } catch (e) {
      await store.close().catch(() => {});
      await this.ns.delete(name).catch(() => {});
      throw e;
    }
    const old = this.fold;
    this.fold = { c, store };
    // in the same turn: the index moves to the new fold before any read can use the old one
    switched();
    if (old) {
      await old.store.close().catch(() => {});
      await this.ns.delete(foldName(old.c));
    }
    await this.dropFolded(c);
  }

  /** Delete the segments whose records are all at or before c (the next one starts at or before c + 1). */
  private async dropFolded(c: number): Promise<void> {
    let dropped = false;
    while (this.segments.length > 1 && this.segments[1]!.first <= c + 1) {
      const s = this.segments.shift()!;
      await s.store.close().catch(() => {});
      await this.ns.delete(segmentName(s.n));
      dropped = true;
    }
    if (dropped) await this.ns.sync();
  }
}

/** Every segment of the log in a namespace, deleted (whatever state it is in). */
export async function deleteLog(ns: StoreNamespace): Promise<number> {
  let n = 0;
  for (const name of await ns.list()) {
    if (isLogStore(name)) {
      await ns.delete(name);
      n++;
    }
  }
  await ns.sync();
  return n;
}

/** One record's description at `pos` (not its data), or a reason it is not a valid record there. */
async function readOne(reader: ChunkReader, pos: number, expect: number | null): Promise<{ rec: LogRecord; envelope: number; dataLength: number } | string> {
  const headBytes = await reader.get(pos, RECORD_HEADER);
  if (!headBytes) return 'the segment ends inside a record header';
  const env = readEnvelope(headBytes, null);
  if (!env) return 'not a record header';
  if (expect !== null && env.seq !== expect) return `record number ${env.seq} where ${expect} was expected`;
  if (!readsVersion('writeLog', env.version)) throw newerVersion('writeLog', 'The write log', env.version);
  const size = envelopeBytes(env.descLength);
  const whole = await reader.get(pos, size);
  if (!whole) return 'the segment ends inside a record';
  if (!checksumOk(whole, env.descLength)) return 'the record checksum does not match';
  let rec: LogRecord;
  try {
    rec = decodeRecord(whole, env.kind, env.seq, env.descLength);
  } catch (e) {
    return `the record description is malformed (${(e as Error).message})`;
  }
  const dataLength = rec.kind === KIND_WRITE || rec.kind === KIND_FOLD ? rec.dataLength : 0;
  if (pos + size + dataLength > reader.store.size) return 'the segment ends inside the record data';
  return { rec, envelope: size, dataLength };
}

