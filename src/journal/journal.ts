import { StrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';
import type { Volume } from '../volume/volume.js';
import type { VolumeReader } from '../volume/volume-reader.js';
import type { ObserverHandle, VolumeEvent, WriteEvent, WriteObserver } from '../volume/write-observer.js';
import { xxh3_128 } from '../wasm/index.js';
import { BlockHistory, FLAG_WHOLE, FLAG_ZERO, MAX_PARTIALS, type PieceRef } from './block-history.js';
import { BASE_SEQ, resolvePoint, type Mark, type Point } from './points.js';
import { KIND_FLUSH, KIND_FOLD, KIND_HEAD, KIND_MARK, KIND_VOID, KIND_WRITE, KIND_ZERO, encodeMark, encodeVoid, encodeWrite, type LogRecord, type Piece } from './record.js';
import { journalView } from './view.js';
import { checkPolicy, policyFromSettings, quotaError, segmentBytesFor, settingsOf, type LogPolicy } from './quota.js';
import { foldLog, retentionPoint } from './checkpoint.js';
import { FOLD_SEGMENT, WriteLog, deleteLog, type Place } from './write-log.js';

/**
 * The write log of a volume (journal mode): every write, write-zeroes and flush of the live
 * volume is appended to a log on its own stores (write-log.ts), so any earlier moment can be
 * read (views), marked, and restored. It is a synchronous write observer (src/volume/
 * write-observer.ts): a write is acknowledged only once its record is written, and each flush of
 * the volume syncs the log first (WriteObserver.commit), so after a crash the log is never
 * behind the volume. It is never ahead either: opening cuts what no flush covered and redoes
 * the last flush's writes on the volume (recover()), so the view at the last flush equals the
 * volume.
 *
 * The volume records the requirement (`requires: journal`, where the log lives), so a writer
 * that does not attach the log is refused; open a journaled volume with openJournaled()
 * (open.ts).
 */
export const REQUIREMENT = 'journal';
/** The snapshot holding the volume as it was when the log began. */
export const BASE_SNAPSHOT = 'journal.base';

export interface JournalStatus {
  journal: string;
  /** log seq of the last record (-1: none yet) */
  lastSeq: number;
  /** log seq of the last durable flush (-1: none yet; the base) */
  lastFlush: number;
  records: number;
  bytes: number;
  marks: number;
  blocks: number;
  /** set when the log failed: the volume takes no more writes */
  failed: string | null;
  /** the size limit and what happens at it */
  policy: LogPolicy;
  /** over the limit with policy `refuse`: writes are refused */
  full: boolean;
  /** the last background fold's failure */
  foldError: string | null;
  /** what opening cut or redid */
  recovered: { cutRecords: number; cutBytes: number; redone: number; reason: string } | null;
}

interface RecordInfo {
  seq: number;
  time: number;
  kind: number;
}

export class Journal {
  history: BlockHistory;
  /** records in log order: seq, time, kind (writes, zeroes, flushes, marks) */
  private readonly records: RecordInfo[] = [];
  private readonly markList: Mark[] = [];
  /** volume event seq -> log seq of writes logged whose volume write has not ended */
  private readonly inflight = new Map<number, number>();
  private handle: ObserverHandle | null = null;
  private failure: StrataError | null = null;
  private lastFlushSeq = BASE_SEQ;
  private closed = false;
  recovered: JournalStatus['recovered'] = null;

  private constructor(
    readonly volume: Volume,
    readonly log: WriteLog,
    readonly id: string,
    private readonly base: VolumeReader,
    readonly readOnly: boolean,
  ) {
    this.history = new BlockHistory(volume.blockSize);
    this.policy = policyFromSettings(volume.requirements().find((r) => r.name === REQUIREMENT)?.settings);
    log.segmentBytes = segmentBytesFor(this.policy, log.segmentBytes);
  }

  // ---- size limit (quota.ts) ----

  policy: LogPolicy;
  /** over the limit with policy `refuse`: writes are refused until it is not */
  private full = false;
  /** a background fold started by the `fold` policy */
  private folding: Promise<void> | null = null;
  /** the last background fold's failure, shown in status */
  private foldError: string | null = null;

  /** Set the size limit and what happens at it (one manifest commit). */
  async setPolicy(p: LogPolicy): Promise<void> {
    this.assertWritable();
    checkPolicy(p);
    const req = this.volume.requirements().find((r) => r.name === REQUIREMENT);
    if (!req) throw new StrataError('not-found', 'This volume keeps no write log.');
    await this.volume.setRequirement(REQUIREMENT, req.where, req.keeps, settingsOf(p));
    this.policy = { ...p };
    this.log.segmentBytes = segmentBytesFor(p, this.log.segmentBytes);
    this.checkQuota();
  }

  /** After a commit or a fold: over the limit, fold in the background or refuse writes. */
  checkQuota(): void {
    const max = this.policy.maxBytes;
    if (max === undefined || this.readOnly) {
      this.full = false;
      return;
    }
    const over = this.log.bytes > max;
    if (this.policy.onFull === 'refuse') {
      this.full = over;
      return;
    }
    this.full = false;
    if (!over || this.folding || this.closed) return;
    const c = retentionPoint(this, { keepBytes: Math.floor(max / 2) });
    if (c === null) return;
    this.folding = foldLog(this, { seq: c })
      .then(
        () => {
          this.foldError = null;
        },
        (e: unknown) => {
          this.foldError = e instanceof Error ? e.message : String(e);
        },
      )
      .finally(() => {
        this.folding = null;
      });
  }

  /** Waits for a background fold (tests, close). */
  async settled(): Promise<void> {
    while (this.folding) await this.folding;
  }

  // ---- enable / open ----

  /**
   * Start a write log for `volume` (open for writing, no log yet) in `logNs` (`where` names it
   * in the manifest: '' for the volume's own namespace). Snapshots the volume as the log's base
   * (O(1)), records the requirement, and attaches.
   */
  static async enable(volume: Volume, logNs: StoreNamespace, where: string): Promise<Journal> {
    if (volume.requirements().some((r) => r.name === REQUIREMENT)) throw new StrataError('exists', 'This volume already keeps a write log; see it with `stratadisk journal status DIR`.');
    await volume.flush();
    if (volume.snapshots().some((s) => s.name === BASE_SNAPSHOT)) await volume.deleteSnapshot(BASE_SNAPSHOT);
    await volume.snapshot(BASE_SNAPSHOT);
    // segments left by an enable that never recorded its requirement (or an unfinished disable)
    await deleteLog(logNs);
    const id = randomId();
    const log = await WriteLog.create(logNs, { journal: id, volume: volume.info().uuid, blockSize: volume.blockSize, size: volume.size, base: BASE_SNAPSHOT });
    try {
      await volume.setRequirement(REQUIREMENT, where, [BASE_SNAPSHOT]);
    } catch (e) {
      await log.destroy().catch(() => {});
      throw e;
    }
    const j = new Journal(volume, log, id, volume.openSnapshot(BASE_SNAPSHOT), false);
    j.lastFlushSeq = BASE_SEQ;
    j.flushedThrough = log.nextSeq;
    j.attach();
    return j;
  }

  /**
   * Open the log of `volume`. A writable volume is recovered (cut and redo, see the class
   * comment) and the log attached; a read-only one only reads it.
   */
  static async open(volume: Volume, logNs: StoreNamespace, options: { readOnly?: boolean } = {}): Promise<Journal> {
    const readOnly = options.readOnly ?? volume.info().readOnly;
    let j: Journal | null = null;
    const pending: { rec: LogRecord; place: Place; dataAt: number }[] = [];
    const opened = await WriteLog.open(logNs, readOnly, (rec, place, dataAt) => {
      if (rec.kind === KIND_HEAD) return;
      pending.push({ rec, place, dataAt });
    });
    const { log, head } = opened;
    try {
      if (head.volume !== volume.info().uuid) throw new StrataError('invalid-argument', `The write log in ${logNs.label ?? 'that place'} belongs to another volume (${head.volume}).`);
      if (!volume.snapshots().some((s) => s.name === head.base)) {
        throw new StrataError('corrupt', `The snapshot ${head.base}, the base of the write log, is gone: no point of the log can be read. Disable the log (\`stratadisk journal disable DIR\`) and enable a new one.`);
      }
      j = new Journal(volume, log, head.journal, volume.openSnapshot(head.base), readOnly);
      for (const p of pending) j.index(p.rec, p.place, p.dataAt);
      j.lastFlushSeq = opened.lastSeq;
      const cutTo = await j.unsyncedTail();
      if (cutTo && readOnly) j.lastFlushSeq = cutTo.seq;
      else if (cutTo) {
        // the last flush interval was never synced (its data is torn): the volume never flushed
        // it either; cut the log back to the flush before and open again
        await log.truncateAfter(cutTo.end);
        await log.close();
        const again = await Journal.open(volume, logNs, options);
        again.recovered = { cutRecords: (again.recovered?.cutRecords ?? 0) + 1, cutBytes: again.recovered?.cutBytes ?? 0, redone: again.recovered?.redone ?? 0, reason: `the last flush interval (after record ${cutTo.seq}) was torn by a crash during its sync` };
        return again;
      }
      j.flushedThrough = log.nextSeq;
      if (!readOnly) {
        const redone = await j.recover();
        if (opened.cut || redone > 0) j.recovered = { cutRecords: opened.cut?.records ?? 0, cutBytes: opened.cut?.bytes ?? 0, redone, reason: opened.cut?.reason ?? '' };
        j.attach();
      } else {
        if (opened.cut || opened.damaged) j.recovered = { cutRecords: opened.cut?.records ?? 0, cutBytes: opened.cut?.bytes ?? 0, redone: 0, reason: opened.damaged ?? opened.cut!.reason };
        // a read-only volume has no writes to observe; this only closes the log with the volume
        j.handle = volume.observe({ mode: 'async', observe() {}, detached: () => j!.closeLog() });
      }
      return j;
    } catch (e) {
      await log.close();
      throw e;
    }
  }

  private foldBegun = false;

  /**
   * Replace the index by one that starts with a fold at `c` (checkpoint.ts): `pieces` (whole
   * blocks in the fold store at their places) then every piece after c. Synchronous: views made
   * from now on read the fold; records and marks at or before c are dropped.
   */
  switchToFold(c: number, pieces: { piece: Piece; pos: number }[]): void {
    this.history = this.history.foldedCopy(c, (h) => {
      h.beginRecord(c);
      for (const { piece, pos } of pieces) this.addPieces(c, KIND_FOLD, [piece], FOLD_SEGMENT, pos, h);
    });
    const keep = <T extends { seq: number }>(xs: T[]): T[] => xs.filter((x) => x.seq > c);
    this.records.splice(0, this.records.length, ...keep(this.records));
    this.markList.splice(0, this.markList.length, ...keep(this.markList).filter((m) => m.point >= c));
  }

  /** The flushes seen while opening: [seq, inflight] of the last two (for recover). */
  private flushes: { seq: number; inflight: number[]; end: Place }[] = [];
  /** write records of the last two flush intervals: seq -> pieces with places (for recover) */
  private recent = new Map<number, { kind: number; pieces: Piece[]; dataAt: number; place: Place }>();

  /** The oldest point the log keeps: the base, or the point it was folded to. */
  get oldest(): number {
    return this.log.fold?.c ?? BASE_SEQ;
  }

  private index(rec: LogRecord, place: Place, dataAt: number): void {
    const fold = this.log.fold;
    if (rec.kind === KIND_FOLD) {
      if (!this.foldBegun) this.history.beginRecord(rec.seq);
      this.foldBegun = true;
      this.addPieces(rec.seq, KIND_FOLD, rec.pieces, place.segment, dataAt);
      return;
    }
    // records a fold already holds (their segment outlived the fold by a crash)
    if (fold && rec.kind !== KIND_HEAD && rec.seq <= fold.c) return;
    switch (rec.kind) {
      case KIND_WRITE:
      case KIND_ZERO: {
        this.records.push({ seq: rec.seq, time: rec.time, kind: rec.kind });
        this.addPieces(rec.seq, rec.kind, rec.pieces, place.segment, dataAt);
        this.recent.set(rec.seq, { kind: rec.kind, pieces: rec.pieces, dataAt, place });
        break;
      }
      case KIND_FLUSH: {
        this.records.push({ seq: rec.seq, time: rec.time, kind: rec.kind });
        this.flushes.push({ seq: rec.seq, inflight: rec.inflight, end: { segment: place.segment, pos: dataAt } });
        if (this.flushes.length > 2) {
          // forget writes older than the flush before the last, unless still named in flight
          const keepAfter = this.flushes[0]!.seq;
          const named = new Set(this.flushes.flatMap((f) => f.inflight));
          for (const s of this.recent.keys()) if (s < keepAfter && !named.has(s)) this.recent.delete(s);
          this.flushes.shift();
        }
        break;
      }
      case KIND_MARK:
        this.markList.push({ label: rec.label, point: rec.point, seq: rec.seq, time: rec.time });
        this.records.push({ seq: rec.seq, time: rec.time, kind: rec.kind });
        break;
      case KIND_VOID:
        this.history.voidRecord(rec.voided);
        this.recent.delete(rec.voided);
        break;
    }
  }

  private addPieces(seq: number, kind: number, pieces: readonly Piece[], segment: number, dataAt: number, into: BlockHistory = this.history): void {
    const bs = this.volume.blockSize;
    if (kind !== KIND_FOLD) into.beginRecord(seq);
    let pos = dataAt;
    for (const p of pieces) {
      const block = Math.floor(p.offset / bs);
      const flags = (p.whole ? FLAG_WHOLE : 0) | (kind === KIND_ZERO ? FLAG_ZERO : 0);
      into.add(block, seq, segment, pos, p.offset - block * bs, p.length, flags, kind === KIND_ZERO ? null : p.hash);
      if (kind !== KIND_ZERO) pos += p.length;
    }
  }

  /**
   * The data of the writes in the last flush interval, checked: torn data there means that
   * flush's sync never completed (a crash kept its FLUSH record and lost some of the writes
   * before it), so the volume never recorded that flush either. Returns the flush before it (to
   * cut back to), or null when the interval is whole.
   */
  private async unsyncedTail(): Promise<{ seq: number; end: Place } | null> {
    const last = this.flushes[this.flushes.length - 1];
    const prev = this.flushes.length > 1 ? this.flushes[this.flushes.length - 2]! : null;
    if (!last || !prev) return null;
    let buf = new Uint8Array(0);
    for (const [seq, r] of this.recent) {
      if (seq <= prev.seq || seq >= last.seq || r.kind === KIND_ZERO) continue;
      let pos = r.dataAt;
      for (const p of r.pieces) {
        if (buf.length < p.length) buf = new Uint8Array(p.length);
        const part = buf.subarray(0, p.length);
        if (!(await this.log.readChecked(r.place.segment, pos, part, p.hash))) return { seq: prev.seq, end: prev.end };
        pos += p.length;
      }
    }
    return null;
  }

  /**
   * After a crash the volume holds the writes of its last flush or of the one before (its map
   * record may not have landed after the log synced). Redo, in log order, every write of the
   * last flush interval and those the flush before it named in flight: then the volume equals
   * the log's view at its last flush. Idempotent. Returns how many records were redone.
   */
  private async recover(): Promise<number> {
    const last = this.flushes[this.flushes.length - 1];
    if (!last) return 0;
    const prev = this.flushes.length > 1 ? this.flushes[this.flushes.length - 2]! : null;
    const after = prev ? prev.seq : BASE_SEQ;
    const named = new Set(prev ? prev.inflight : []);
    const redo = [...this.recent.entries()].filter(([s]) => (s > after && s < last.seq) || named.has(s)).sort((a, b) => a[0] - b[0]);
    // a write named in flight at a flush may be missing from the volume's state there: its
    // block then reads as just before it
    const unended = new Map<number, number[]>();
    for (const s of [...named, ...last.inflight]) {
      const r = this.recent.get(s);
      if (!r) continue;
      for (const p of r.pieces) {
        const b = Math.floor(p.offset / this.volume.blockSize);
        unended.set(b, [...(unended.get(b) ?? []), s - 1]);
      }
    }
    // a volume already at the last flush (a clean close) needs nothing redone
    if (!(await this.checkBeforeRedo(redo.map(([, r]) => r), after, last.seq, unended))) {
      this.recent.clear();
      this.flushes = [];
      return 0;
    }
    let buf = new Uint8Array(0);
    for (const [seq, r] of redo) {
      if (r.kind === KIND_ZERO) {
        for (const p of r.pieces) await this.volume.writeZeroes(p.offset, p.length);
        continue;
      }
      let pos = r.dataAt;
      for (const p of r.pieces) {
        if (buf.length < p.length) buf = new Uint8Array(p.length);
        const part = buf.subarray(0, p.length);
        if (!(await this.log.readChecked(r.place.segment, pos, part, p.hash))) {
          throw new StrataError('corrupt', `Record ${seq} of the write log, which the volume may lack after a crash, is damaged; the volume and its log may disagree at ${p.offset}. Restore the log from a copy, or disable it.`);
        }
        await this.volume.write(p.offset, part);
        pos += p.length;
      }
    }
    if (redo.length > 0) await this.volume.flush();
    this.recent.clear();
    this.flushes = [];
    return redo.length;
  }

  /**
   * Before redoing, every block the redo touches must read, in the volume, as the log has it at
   * one of the two flushes the volume can be at (the earlier one, or the last). Returns whether
   * any block is behind the last flush (false: nothing to redo). Anything else
   * means the log lost durable records at its end (it is behind the volume): redoing would
   * write old data over newer, so the open fails with `corrupt` instead, changing nothing.
   */
  private async checkBeforeRedo(redo: { pieces: Piece[] }[], earlier: number, last: number, unended: Map<number, number[]>): Promise<boolean> {
    const bs = this.volume.blockSize;
    const blocks = new Set<number>();
    for (const r of redo) for (const p of r.pieces) blocks.add(Math.floor(p.offset / bs));
    if (blocks.size === 0) return false;
    let behind = false;
    const before = this.view({ seq: Math.max(earlier, this.oldest) });
    const after = this.view({ seq: last });
    const a = new Uint8Array(bs);
    const b = new Uint8Array(bs);
    const v = new Uint8Array(bs);
    for (const block of blocks) {
      const len = Math.min(bs, this.volume.size - block * bs);
      await this.volume.readInto(block * bs, v.subarray(0, len));
      await after.readInto(block * bs, a.subarray(0, len));
      if (equalBytes(v, a, len)) continue;
      behind = true;
      await before.readInto(block * bs, b.subarray(0, len));
      if (equalBytes(v, b, len)) continue;
      let ok = false;
      for (const seq of unended.get(block) ?? []) {
        await this.view({ seq: Math.max(seq, this.oldest) }).readInto(block * bs, b.subarray(0, len));
        if ((ok = equalBytes(v, b, len))) break;
      }
      if (ok) continue;
      throw new StrataError(
        'corrupt',
        `The write log is behind the volume: block ${block} holds data the log has at neither of its last two flushes (records ${earlier} and ${last}), so the log lost durable records at its end. Nothing was changed. Restore the log from a copy, or disable it (\`stratadisk journal disable DIR --force\`) and enable a new one.`,
      );
    }
    return behind;
  }

  private attach(): void {
    const self = this;
    const observer: WriteObserver = {
      mode: 'sync',
      onFailure: 'detach',
      observe(event: VolumeEvent) {
        if (event.type === 'write') return self.logWrite(event);
        return undefined;
      },
      ended(seq: number, ok: boolean) {
        const logSeq = self.inflight.get(seq);
        if (logSeq === undefined) return;
        self.inflight.delete(seq);
        if (!ok) {
          self.history.voidRecord(logSeq);
          const vseq = self.log.nextSeq++;
          self.log.append(encodeVoid(vseq, Date.now(), logSeq)).written.catch((e: unknown) => self.fail(e));
        }
      },
      commit() {
        return self.commitNow();
      },
      admit() {
        if (self.full) throw quotaError(self.policy, self.log.bytes);
      },
      async detached() {
        await self.closeLog();
      },
    };
    this.handle = this.volume.observe(observer);
  }

  /** Append the record of a write; resolves when it is on the log's store. */
  private async logWrite(ev: WriteEvent): Promise<void> {
    if (this.failure) throw this.failure;
    const bs = this.volume.blockSize;
    const zero = ev.kind === 'zero';
    // pieces: the caller's ranges cut at block boundaries; a partial piece of a block with a long
    // run of partial pieces is logged as the whole block instead (from the event's copy-up)
    const pieces: Piece[] = [];
    const sources: { from: number; len: number }[] = [];
    const runStart = blockPositions(ev.runs);
    for (const r of ev.ranges) {
      let at = r.offset;
      const end = r.offset + r.length;
      while (at < end) {
        const block = Math.floor(at / bs);
        const bStart = block * bs;
        const bEnd = Math.min(bStart + bs, this.volume.size);
        const to = Math.min(end, bEnd);
        const whole = at === bStart && to === bEnd;
        const dataPos = zero ? -1 : runStart(block) * bs;
        if (!whole && !zero && this.history.partialsSinceWhole(block) >= MAX_PARTIALS - 1) {
          pieces.push({ offset: bStart, length: bEnd - bStart, whole: true, hash: EMPTY_HASH });
          sources.push({ from: dataPos, len: bEnd - bStart });
        } else {
          pieces.push({ offset: at, length: to - at, whole, hash: EMPTY_HASH });
          sources.push({ from: dataPos + (at - bStart), len: to - at });
        }
        at = to;
      }
    }
    const seq = this.log.nextSeq++;
    const kind = zero ? KIND_ZERO : KIND_WRITE;
    if (!zero) {
      // a whole block the layer recorded with data has its XXH3-128 already (the same bytes)
      const layerHash = wholeBlockHashes(ev);
      for (let i = 0; i < pieces.length; i++) {
        const p = pieces[i]!;
        const known = p.whole ? layerHash.get(Math.floor(p.offset / bs)) : undefined;
        p.hash = known ?? xxh3_128(ev.data.subarray(sources[i]!.from, sources[i]!.from + sources[i]!.len));
      }
    }
    const { bytes, dataAt } = encodeWrite(kind, seq, Date.now(), pieces);
    if (!zero) {
      let p = dataAt;
      for (const s of sources) {
        bytes.set(ev.data.subarray(s.from, s.from + s.len), p);
        p += s.len;
      }
    }
    this.inflight.set(ev.seq, seq);
    const { place, written } = this.log.append(bytes);
    // indexed now, in log order; views only ever read at or before the last durable flush, and
    // every record before a flush is written before that flush completes
    this.noteRecord(seq, Date.now(), kind);
    this.addPieces(seq, kind, pieces, place.segment, place.pos + dataAt);
    try {
      await written;
    } catch (e) {
      throw this.fail(e);
    }
  }

  /** WriteObserver.commit: a FLUSH record naming the writes still in flight, synced. */
  private async commitNow(): Promise<void> {
    if (this.failure) throw this.failure;
    // nothing logged since the last FLUSH: an idle flush adds no record (unless an import needs one)
    if (!this.forceFlushRecord && this.log.nextSeq === this.flushedThrough && this.inflight.size === 0) return;
    this.forceFlushRecord = false;
    const inflight = [...this.inflight.values()];
    const { seq, durable } = this.log.commit(inflight);
    this.noteRecord(seq, Date.now(), KIND_FLUSH);
    try {
      await durable;
    } catch (e) {
      throw this.fail(e);
    }
    if (seq > this.lastFlushSeq) this.lastFlushSeq = seq;
    if (seq + 1 > this.flushedThrough) this.flushedThrough = seq + 1;
    this.checkQuota();
  }


  /** nextSeq when the last FLUSH was made durable: nothing logged since when they are equal */
  private flushedThrough = -1;
  /** the next commit appends a FLUSH even with nothing logged (a dm-log-writes flush entry is one record) */
  forceFlushRecord = false;

  /** The log failed: stop the volume's writes (nothing unlogged may become durable). */
  private fail(e: unknown): StrataError {
    if (!this.failure) {
      const why = e instanceof Error ? e.message : String(e);
      const code = e instanceof StrataError ? e.code : 'io';
      this.failure = new StrataError(code, `The write log failed (${why}). The volume accepts no more writes, so that the log keeps every write it has; what was flushed before is in both. Fix the cause (free space?) and open the volume again.`, { cause: e });
      this.volume.stopWrites(this.failure);
    }
    return this.failure;
  }

  // ---- marks and points ----

  /**
   * Flush the volume and append a transaction-end mark at that point (durable when this
   * resolves). Marks are points a restore may go to without --force.
   */
  async mark(label: string): Promise<Mark> {
    this.assertWritable();
    if (label.length === 0) throw new StrataError('invalid-argument', 'A mark needs a label.');
    await this.volume.flush();
    const point = this.lastFlushSeq;
    const seq = this.log.nextSeq++;
    const time = Date.now();
    const { written } = this.log.append(encodeMark(seq, time, point, label));
    this.noteRecord(seq, time, KIND_MARK);
    const flush = this.log.commit([...this.inflight.values()]);
    this.noteRecord(flush.seq, time, KIND_FLUSH);
    try {
      await written;
      await flush.durable;
    } catch (e) {
      throw this.fail(e);
    }
    const m: Mark = { label, point, seq, time };
    this.markList.push(m);
    return m;
  }

  marks(): Mark[] {
    return this.markList.map((m) => ({ ...m }));
  }

  /** The log seq a point names: `seq:N`, `time:ISO`, `mark:LABEL`, `base` (-1) or `latest` (the last flush). */
  resolve(point: string | Point): number {
    return resolvePoint(point, { lastSeq: this.lastFlushSeq, oldest: this.oldest, marks: this.markList, records: this.records });
  }

  /** Is log seq `seq` a mark's point (a transaction end)? */
  isMarked(seq: number): boolean {
    return this.markList.some((m) => m.point === seq);
  }

  /** A read-only view of the volume at a point. */
  view(point: string | Point): VolumeReader {
    this.assertOpen();
    const at = this.resolve(point);
    return journalView({ at, base: this.base, history: this.history, log: this.log, label: `The view at record ${at}`, assertOpen: () => this.assertOpen() });
  }

  status(): JournalStatus {
    return {
      journal: this.id,
      lastSeq: this.log.nextSeq - 1,
      lastFlush: this.lastFlushSeq,
      records: this.records.length,
      bytes: this.log.bytes,
      marks: this.markList.length,
      blocks: this.history.blockCount,
      failed: this.failure ? this.failure.message : null,
      policy: { ...this.policy },
      full: this.full,
      foldError: this.foldError,
      recovered: this.recovered,
    };
  }

  /** Keep `records` in seq order (a FLUSH or mark may be taken while earlier writes are logged: rarely out of order). */
  private noteRecord(seq: number, time: number, kind: number): void {
    const rs = this.records;
    if (rs.length === 0 || rs[rs.length - 1]!.seq < seq) {
      rs.push({ seq, time, kind });
      return;
    }
    let lo = 0;
    let hi = rs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (rs[mid]!.seq < seq) lo = mid + 1;
      else hi = mid;
    }
    rs.splice(lo, 0, { seq, time, kind });
  }

  /** The records with seq in (after, upTo], in log order (writes, zeroes, flushes, marks; voids are not records of their own here). */
  recordsBetween(after: number, upTo: number): { seq: number; time: number; kind: 'write' | 'zero' | 'flush' | 'mark'; label?: string }[] {
    const names = { [KIND_WRITE]: 'write', [KIND_ZERO]: 'zero', [KIND_FLUSH]: 'flush', [KIND_MARK]: 'mark' } as const;
    const labels = new Map(this.markList.map((m) => [m.seq, m.label]));
    const out: { seq: number; time: number; kind: 'write' | 'zero' | 'flush' | 'mark'; label?: string }[] = [];
    // records are kept in seq order (noteRecord): start by binary search
    let lo = 0;
    let hi = this.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.records[mid]!.seq <= after) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.records.length; i++) {
      const r = this.records[i]!;
      if (r.seq > upTo) break;
      const kind = names[r.kind as keyof typeof names];
      if (!kind) continue;
      out.push(kind === 'mark' ? { seq: r.seq, time: r.time, kind, label: labels.get(r.seq) ?? '' } : { seq: r.seq, time: r.time, kind });
    }
    return out;
  }

  /** Read the bytes of a logged piece (checked against its hash). */
  async readPiece(seq: number, piece: PieceRef, target: Uint8Array): Promise<void> {
    if (!(await this.log.readChecked(piece.segment, piece.pos, target, piece.hash))) {
      throw new StrataError('checksum-mismatch', `Record ${seq} of the write log (${piece.length} bytes) does not match its checksum: the log is damaged there.`);
    }
  }

  /**
   * For an import (dm-log.ts): append a MARK record at the current point without a flush (a
   * dm-log-writes mark is one entry, so one record). Its point is its own seq.
   */
  async appendMark(label: string): Promise<Mark> {
    this.assertWritable();
    const seq = this.log.nextSeq++;
    const time = Date.now();
    const { written } = this.log.append(encodeMark(seq, time, seq, label));
    this.noteRecord(seq, time, KIND_MARK);
    const m: Mark = { label, point: seq, seq, time };
    this.markList.push(m);
    try {
      await written;
    } catch (e) {
      throw this.fail(e);
    }
    return m;
  }

  /** The seq the next record will get. */
  get nextSeq(): number {
    return this.log.nextSeq;
  }

  /** Blocks changed after `after` up to `upTo` (log seqs), ascending: what a restore or a diff covers. */
  blocksChanged(after: number, upTo: number = this.log.nextSeq - 1): number[] {
    return this.history.blocksChanged(after, upTo);
  }

  private assertOpen(): void {
    if (this.closed) throw new StrataError('closed', 'The write log is closed; open the volume again.');
  }

  assertWritable(): void {
    this.assertOpen();
    if (this.readOnly) throw new StrataError('read-only', 'The volume and its write log are open read-only; open them for writing to add marks or restore.');
    if (this.failure) throw this.failure;
  }

  /** Detach from the volume (it keeps requiring the log) and close the log's stores. */
  async close(): Promise<void> {
    if (this.handle) await this.handle.detach();
    else await this.closeLog();
  }

  private async closeLog(): Promise<void> {
    if (this.closed) return;
    await this.settled();
    this.closed = true;
    // a last FLUSH naming the last synced one: the next open can tell damage before it from a
    // torn tail, and finds nothing to redo
    // (an empty log has nothing to prove: a log just enabled stays empty, so an import can number from 0)
    if (!this.readOnly && this.failure === null && this.handle !== null && this.log.nextSeq > 0) {
      try {
        const { seq, durable } = this.log.commit([...this.inflight.values()]);
        await durable;
        this.lastFlushSeq = Math.max(this.lastFlushSeq, seq);
      } catch {
        // the volume's own flush already succeeded or failed on its own; the next open cuts a torn tail
      }
    }
    await this.log.close();
  }
}

const EMPTY_HASH = new Uint8Array(16);

function equalBytes(a: Uint8Array, b: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** block -> the XXH3-128 the layer recorded for it in this write (blocks stored with data only). */
function wholeBlockHashes(ev: WriteEvent): Map<number, Uint8Array> {
  const l = ev.layer;
  const out = new Map<number, Uint8Array>();
  for (let k = 0; k < l.blocks.length; k++) {
    if (l.zero?.[k]) continue;
    const i = l.dataIndex[k]!;
    out.set(l.blocks[k]!, l.hashes.subarray(i * 16, i * 16 + 16));
  }
  return out;
}

/** For flat [first, count]* runs: a function from a block to its index in the runs' data. */
function blockPositions(runs: readonly number[]): (block: number) => number {
  return (block: number) => {
    let before = 0;
    for (let r = 0; r < runs.length; r += 2) {
      const first = runs[r]!;
      const count = runs[r + 1]!;
      if (block >= first && block < first + count) return before + (block - first);
      before += count;
    }
    throw new RangeError(`block ${block} is not in the write's runs`);
  };
}

function randomId(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}
