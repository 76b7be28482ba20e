import { StrataError, isStrataError } from '../errors.js';
import { FORMATS, MAGIC_OUT_OF_SYNC, newerVersion, readsVersion } from '../format/magic.js';
import { RECORD_HEADER, RECORD_OVERHEAD, checksumOk, corrupt, decodeHead, encodeRecord } from '../format/record.js';
import { checkName, type Store, type StoreNamespace } from '../store/store.js';
import { loadKernels } from '../wasm/index.js';
import {
  PAGE_BITS, PAGE_BYTES, PAGE_SHIFT, PAGE_WORDS, blocksOf, checkRuns, clearBits, eachRun, nextSet, popcount32, setBits, testBit, type Geometry,
} from './bitmap-pages.js';

/**
 * The out-of-sync bitmap of a replication session (DRBD's bitmap): the blocks the secondary may
 * lack, at the volume's block granularity, kept in memory as sparse pages (bitmap-pages.ts) and
 * persisted page-wise, so a persist costs the pages changed since the last one.
 *
 * On the store, in two files `<name>.0` and `<name>.1` (format `outOfSync` v1, magic "SDOS"):
 *
 *   offset 0, 128   two header slots (A/B): a checksummed record (src/format/record.ts) of kind 1
 *                   whose sequence number is the header's generation; payload (40 bytes, LE):
 *                   epoch u32, blockSize u32, size u64, pageBits u32, reserved u32 (0),
 *                   logLength u64, dirtyBlocks u64
 *   offset 256..    the page log: records of kind 2, sequence number = the epoch, payload:
 *                   page u32, encoding u16 (0 empty, 1 runs, 2 raw bits, 3 all set), reserved u16,
 *                   bits set u32, runs u32, then the runs (u16 first, u16 count-1 each) or 4096
 *                   bytes of bits (LSB first)
 *
 * The newest valid header of the four slots says which file is current and how long its log
 * is: every record in [256, logLength) must be whole and of the header's epoch, later records of
 * a page replace earlier ones, and the bits they set must add up to `dirtyBlocks`; anything past
 * logLength is a write that never committed and is ignored. A persist appends the changed pages
 * at logLength, flushes, then writes the header (generation + 1) into the other slot of the same
 * file and flushes: a crash before the header's flush leaves the previous header, so a persist
 * either happened or did not. When the log has grown past twice the live pages, a persist
 * compacts instead: it writes every live page into the other file (a new epoch), flushes, then
 * that file's header, flushes, and zeroes the header slots of the file it left (so a current file
 * cut short or damaged later is `corrupt`, never an old epoch read as the truth). No rename and no
 * truncate is relied on. A bitmap whose files hold bytes but no valid header is `corrupt`, never
 * taken for a new one; only missing or empty files are (a creation that never finished).
 *
 * A damaged file gives `corrupt` (never a "clean" it cannot vouch for); the caller then treats
 * the whole volume as out of sync ({@link OutOfSync.openOrReset}). One case cannot be told from a
 * crash: damage to the newest header looks like a header write that was torn, and the bitmap
 * opens as of the persist before. `close()` writes the final header into both slots, so after a
 * clean close even that is detected.
 */

const HEADER_SLOT = 128;
const LOG_START = 256;
const KIND_HEADER = 1;
const KIND_PAGE = 2;
const HEADER_PAYLOAD = 40;
const PAGE_HEAD = 16;
const ENC_EMPTY = 0;
const ENC_RUNS = 1;
const ENC_RAW = 2;
const ENC_FULL = 3;
const MAX_PAGE_PAYLOAD = PAGE_HEAD + PAGE_BYTES;
/** Largest run count worth the runs encoding (4 bytes a run against 4096 bytes of bits). */
const MAX_RUNS = PAGE_BYTES / 4 - PAGE_HEAD / 4;
/** Payloads up to this size are kept (sparse pages: a few runs); raw pages are cheap to encode again. */
const CACHE_PAYLOAD = 1024;
const RUN_SCRATCH = new Uint16Array(2 * MAX_RUNS);

/**
 * The runs of set bits of a page as (first, count - 1) u16 pairs into `out`; their number, or -1
 * when there are more than `max` (the page is then stored raw). Skips clear words a word at a time.
 */
function pageRuns(w: Uint32Array, out: Uint16Array, max: number): number {
  let n = 0;
  let b = 0;
  while (b < PAGE_BITS) {
    let i = b >>> 5;
    let word = w[i]! & (-1 << (b & 31));
    while (word === 0) {
      if (++i >= PAGE_WORDS) return n;
      word = w[i]!;
    }
    const s = (i << 5) + (31 - Math.clz32(word & -word));
    i = s >>> 5;
    word = ~w[i]! & (-1 << (s & 31));
    let e = PAGE_BITS;
    for (;;) {
      if (word !== 0) {
        e = (i << 5) + (31 - Math.clz32(word & -word));
        break;
      }
      if (++i >= PAGE_WORDS) break;
      word = ~w[i]!;
    }
    if (n >= max) return -1;
    out[2 * n] = s;
    out[2 * n + 1] = e - s - 1;
    n++;
    b = e;
  }
  return n;
}

/** Log reads and writes go in pieces of at most this many bytes. */
const IO_CHUNK = 1 << 20;
/** The log is compacted once it is longer than this and than twice the live pages. */
const COMPACT_MIN = 256 * 1024;

export const OUT_OF_SYNC_ADVICE =
  'It cannot say which blocks the secondary lacks: delete it and treat the whole volume as out of sync (a full resync), which OutOfSync.openOrReset does.';

export interface OutOfSyncOptions {
  /** compact the page log only once it is longer than this (default 256 KiB; tests set it low) */
  compactMinBytes?: number;
}

/** One page in memory; `bits` null means every block of the page is out of sync (nothing allocated). */
interface Page {
  bits: Uint32Array | null;
  count: number;
}

interface Header {
  file: 0 | 1;
  generation: number;
  epoch: number;
  blockSize: number;
  size: number;
  pageBits: number;
  logLength: number;
  dirtyBlocks: number;
}

function u64(v: DataView, at: number): number {
  const hi = v.getUint32(at + 4, true);
  return hi >= 2 ** 21 ? Number.NaN : hi * 2 ** 32 + v.getUint32(at, true);
}

function setU64(v: DataView, at: number, n: number): void {
  v.setUint32(at, n % 2 ** 32, true);
  v.setUint32(at + 4, Math.floor(n / 2 ** 32), true);
}

export class OutOfSync {
  readonly #ns: StoreNamespace;
  readonly #name: string;
  readonly #names: readonly [string, string];
  readonly #size: number;
  readonly #blockSize: number;
  readonly #blocks: number;
  readonly #pageCount: number;
  #stores: [Store | null, Store | null] = [null, null];
  #pages = new Map<number, Page>();
  /** present page indices ascending, rebuilt lazily */
  #sorted: number[] | null = [];
  /** pages changed since their last record */
  #changed = new Set<number>();
  #dirty = 0;
  /** bytes of each page's newest record in the current log, and their sum (what a compaction writes) */
  #recordBytes = new Map<number, number>();
  #liveBytes = 0;
  /** encoded payloads of pages unchanged since their last record (small ones only) */
  #payloads = new Map<number, Uint8Array>();
  #generation = 0;
  #epoch = 0;
  #file: 0 | 1 = 0;
  #logLength = LOG_START;
  /** the header on the store does not describe the memory state (a fresh bitmap) */
  #headerStale = false;
  #compactNext = false;
  #compactMin = COMPACT_MIN;
  /** the other file still holds a valid header (a crash came between a compaction and its #invalidate) */
  #otherValid = false;
  /** true when open found no bitmap and made a new one (all clean) */
  #created = false;
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(ns: StoreNamespace, name: string, geometry: Geometry, blocks: number) {
    this.#ns = ns;
    this.#name = name;
    this.#names = [`${name}.0`, `${name}.1`];
    this.#size = geometry.size;
    this.#blockSize = geometry.blockSize;
    this.#blocks = blocks;
    this.#pageCount = Math.ceil(blocks / PAGE_BITS);
  }

  /** Opens the bitmap `name` in `ns` (creating it, all clean, if it does not exist). A damaged one is `corrupt`. */
  static async open(ns: StoreNamespace, name: string, geometry: Geometry, options: OutOfSyncOptions = {}): Promise<OutOfSync> {
    const blocks = blocksOf(geometry, `Out-of-sync bitmap ${name}`);
    checkName(`${name}.0`);
    await loadKernels(); // record checksums are XXH3 (WASM)
    const oos = new OutOfSync(ns, name, geometry, blocks);
    if (options.compactMinBytes !== undefined) oos.#compactMin = options.compactMinBytes;
    try {
      await oos.#load();
    } catch (e) {
      await oos.#closeStores();
      throw e;
    }
    return oos;
  }

  /**
   * Opens the bitmap, or, when it is damaged (or was written for another geometry), deletes it
   * and starts one with every block out of sync, persisted. `reset` says why, for a log line.
   */
  static async openOrReset(ns: StoreNamespace, name: string, geometry: Geometry): Promise<{ oos: OutOfSync; reset: string | null }> {
    try {
      return { oos: await OutOfSync.open(ns, name, geometry), reset: null };
    } catch (e) {
      if (!isStrataError(e, 'corrupt')) throw e;
      await OutOfSync.remove(ns, name);
      const oos = await OutOfSync.open(ns, name, geometry);
      oos.markAll();
      await oos.persist();
      return { oos, reset: e.message };
    }
  }

  /** Deletes the files of bitmap `name` (no error when there are none). */
  static async remove(ns: StoreNamespace, name: string): Promise<void> {
    for (const n of [`${name}.0`, `${name}.1`]) if (await ns.exists(n)) await ns.delete(n);
    await ns.sync();
  }

  /** open found no bitmap and made a new one, all clean: a session that existed before should markAll() (its bitmap was lost while being created). */
  get created(): boolean {
    return this.#created;
  }

  get blocks(): number {
    return this.#blocks;
  }

  get dirtyBlocks(): number {
    return this.#dirty;
  }

  /** Bytes of the volume out of sync (the last block may be shorter than a block). */
  get dirtyBytes(): number {
    let bytes = this.#dirty * this.#blockSize;
    const tail = this.#blocks * this.#blockSize - this.#size;
    if (tail > 0 && this.isDirty(this.#blocks - 1)) bytes -= tail;
    return bytes;
  }

  #bitsIn(page: number): number {
    return Math.min(PAGE_BITS, this.#blocks - page * PAGE_BITS);
  }

  #assertOpen(): void {
    if (this.#closed) throw new StrataError('closed', `Out-of-sync bitmap ${this.#name} is closed; open it again to use it.`);
  }

  /** Marks flat [firstBlock, count]* runs out of sync. */
  markRuns(runs: readonly number[]): void {
    this.#assertOpen();
    checkRuns(runs, this.#blocks, `Out-of-sync bitmap ${this.#name}`);
    for (let i = 0; i < runs.length; i += 2) this.#mark(runs[i]!, runs[i + 1]!);
  }

  /** Marks flat [firstBlock, count]* runs in sync (the secondary has them durably). */
  clearRuns(runs: readonly number[]): void {
    this.#assertOpen();
    checkRuns(runs, this.#blocks, `Out-of-sync bitmap ${this.#name}`);
    for (let i = 0; i < runs.length; i += 2) this.#clear(runs[i]!, runs[i + 1]!);
  }

  /** Marks every block out of sync (after a damaged bitmap, a split brain, a new secondary). */
  markAll(): void {
    this.#assertOpen();
    if (this.#blocks > 0) this.#mark(0, this.#blocks);
  }

  #mark(first: number, count: number): void {
    const end = first + count;
    while (first < end) {
      const p = first >>> PAGE_SHIFT;
      const base = p * PAGE_BITS;
      const from = first - base, to = Math.min(end - base, PAGE_BITS);
      const all = this.#bitsIn(p);
      let page = this.#pages.get(p);
      if (page === undefined) {
        if (from === 0 && to === all) page = { bits: null, count: all };
        else {
          page = { bits: new Uint32Array(PAGE_WORDS), count: 0 };
          page.count = setBits(page.bits!, from, to);
        }
        this.#pages.set(p, page);
        this.#sorted = null;
        this.#dirty += page.count;
        this.#changed.add(p);
      } else if (page.bits !== null) {
        const added = setBits(page.bits, from, to);
        if (added > 0) {
          page.count += added;
          this.#dirty += added;
          if (page.count === all) page.bits = null;
          this.#changed.add(p);
        }
      }
      first = base + to;
    }
  }

  #clear(first: number, count: number): void {
    const end = first + count;
    while (first < end) {
      const p = first >>> PAGE_SHIFT;
      const base = p * PAGE_BITS;
      const from = first - base, to = Math.min(end - base, PAGE_BITS);
      const page = this.#pages.get(p);
      if (page !== undefined) {
        const all = this.#bitsIn(p);
        let removed: number;
        if (from === 0 && to === all) removed = page.count;
        else {
          if (page.bits === null) {
            page.bits = new Uint32Array(PAGE_WORDS);
            setBits(page.bits, 0, all);
          }
          removed = clearBits(page.bits, from, to);
        }
        if (removed > 0) {
          page.count -= removed;
          this.#dirty -= removed;
          this.#changed.add(p);
          if (page.count === 0) {
            this.#pages.delete(p);
            this.#sorted = null;
          }
        }
      }
      first = base + to;
    }
  }

  isDirty(block: number): boolean {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.#blocks) {
      throw new StrataError('out-of-range', `Block ${String(block)} is not within the volume's ${this.#blocks} blocks.`);
    }
    const page = this.#pages.get(block >>> PAGE_SHIFT);
    if (page === undefined) return false;
    return page.bits === null || testBit(page.bits, block & (PAGE_BITS - 1));
  }

  #sortedPages(): number[] {
    if (this.#sorted === null) this.#sorted = [...this.#pages.keys()].sort((a, b) => a - b);
    return this.#sorted;
  }

  /** The out-of-sync blocks from `fromBlock` on, as ascending flat [first, count]* runs of at most `maxBlocks` blocks in all. */
  runs(fromBlock = 0, maxBlocks = Number.MAX_SAFE_INTEGER): number[] {
    if (!Number.isSafeInteger(fromBlock) || fromBlock < 0) throw new StrataError('invalid-argument', `runs: fromBlock ${String(fromBlock)} is not a block index.`);
    if (!Number.isSafeInteger(maxBlocks) || maxBlocks < 0) throw new StrataError('invalid-argument', `runs: maxBlocks ${String(maxBlocks)} is not a count.`);
    const out: number[] = [];
    let left = maxBlocks;
    const add = (first: number, count: number): boolean => {
      count = Math.min(count, left);
      const n = out.length;
      if (n > 0 && out[n - 2]! + out[n - 1]! === first) out[n - 1]! += count;
      else out.push(first, count);
      left -= count;
      return left > 0;
    };
    if (left === 0) return out;
    const sorted = this.#sortedPages();
    let lo = 0, hi = sorted.length;
    const firstPage = Math.floor(fromBlock / PAGE_BITS);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid]! < firstPage) lo = mid + 1; else hi = mid;
    }
    for (let i = lo; i < sorted.length; i++) {
      const p = sorted[i]!;
      const page = this.#pages.get(p)!;
      const base = p * PAGE_BITS;
      const from = Math.max(fromBlock - base, 0), to = this.#bitsIn(p);
      if (from >= to) continue;
      let more = true;
      if (page.bits === null) more = add(base + from, to - from);
      else eachRun(page.bits, from, to, (s, n) => (more = add(base + s, n)));
      if (!more) break;
    }
    return out;
  }

  /** Makes the bitmap as it is now durable; resolves when it is. Costs the pages changed since the last persist. */
  persist(): Promise<void> {
    this.#assertOpen();
    const run = this.#queue.then(() => this.#persistNow());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** The payload of page p's record (cached for small ones until the page changes: a compaction then costs a copy, not a scan). */
  #payloadOf(p: number): Uint8Array {
    const cached = this.#payloads.get(p);
    if (cached !== undefined) return cached;
    const page = this.#pages.get(p);
    let enc = ENC_EMPTY, count = 0, runs = 0, dataBytes = 0;
    if (page !== undefined) {
      count = page.count;
      if (page.bits === null) enc = ENC_FULL;
      else {
        runs = pageRuns(page.bits, RUN_SCRATCH, MAX_RUNS);
        if (runs >= 0) {
          enc = ENC_RUNS;
          dataBytes = runs * 4;
        } else {
          enc = ENC_RAW;
          runs = 0;
          dataBytes = PAGE_BYTES;
        }
      }
    }
    const payload = new Uint8Array(PAGE_HEAD + dataBytes);
    const v = new DataView(payload.buffer);
    v.setUint32(0, p, true);
    v.setUint16(4, enc, true);
    v.setUint32(8, count, true);
    v.setUint32(12, runs, true);
    if (enc === ENC_RUNS) {
      for (let i = 0; i < runs * 2; i++) v.setUint16(PAGE_HEAD + i * 2, RUN_SCRATCH[i]!, true);
    } else if (enc === ENC_RAW) {
      const bits = page!.bits!;
      for (let i = 0; i < PAGE_WORDS; i++) v.setUint32(PAGE_HEAD + i * 4, bits[i]!, true);
    }
    if (payload.length <= CACHE_PAYLOAD) this.#payloads.set(p, payload);
    return payload;
  }

  #encodePage(p: number): Uint8Array {
    const payload = this.#payloadOf(p);
    return encodeRecord({ magic: MAGIC_OUT_OF_SYNC, kind: KIND_PAGE, version: FORMATS.outOfSync.writes, seq: this.#epoch, length: payload.length }, payload);
  }


  #encodeHeader(generation: number, epoch: number, logLength: number, dirty: number): Uint8Array {
    const payload = new Uint8Array(HEADER_PAYLOAD);
    const v = new DataView(payload.buffer);
    v.setUint32(0, epoch, true);
    v.setUint32(4, this.#blockSize, true);
    setU64(v, 8, this.#size);
    v.setUint32(16, PAGE_BITS, true);
    setU64(v, 24, logLength);
    setU64(v, 32, dirty);
    return encodeRecord({ magic: MAGIC_OUT_OF_SYNC, kind: KIND_HEADER, version: FORMATS.outOfSync.writes, seq: generation, length: payload.length }, payload);
  }

  async #persistNow(): Promise<void> {
    if (this.#changed.size === 0 && !this.#headerStale && !this.#compactNext) return;
    // Everything below up to the first await is one snapshot of the memory state.
    const changed = this.#changed;
    this.#changed = new Set();
    for (const p of changed) this.#payloads.delete(p);
    const dirty = this.#dirty;
    const priorEpoch = this.#epoch;
    const sizes = new Map<number, number>();
    let live = this.#liveBytes;
    let appendBytes = 0;
    for (const p of changed) {
      const n = RECORD_OVERHEAD + this.#payloadOf(p).length;
      appendBytes += n;
      const present = this.#pages.has(p);
      const old = this.#recordBytes.get(p) ?? 0;
      sizes.set(p, present ? n : 0);
      live += (present ? n : 0) - old;
    }
    const logUsed = this.#logLength - LOG_START + appendBytes;
    const compact = this.#compactNext || this.#headerStale || logUsed > Math.max(this.#compactMin, 2 * live);
    // (still synchronous: the records are the memory state as of this call)
    const appendRecords: Uint8Array[] = [];
    if (!compact) for (const p of changed) appendRecords.push(this.#encodePage(p));
    try {
      if (compact) {
        this.#epoch = priorEpoch + 1;
        const records: Uint8Array[] = [];
        const recordBytes = new Map<number, number>();
        let total = 0;
        for (const p of this.#sortedPages()) {
          const r = this.#encodePage(p);
          records.push(r);
          recordBytes.set(p, r.length);
          total += r.length;
        }
        const file = (this.#headerStale && this.#generation === 0 ? 0 : 1 - this.#file) as 0 | 1;
        const store = await this.#store(file);
        await this.#writeAll(store, LOG_START, records);
        await store.flush();
        const generation = this.#generation + 1;
        await store.write((generation % 2) * HEADER_SLOT, this.#encodeHeader(generation, this.#epoch, LOG_START + total, dirty));
        await store.flush();
        this.#generation = generation;
        this.#file = file;
        this.#logLength = LOG_START + total;
        this.#recordBytes = recordBytes;
        this.#liveBytes = total;
        this.#headerStale = false;
        this.#compactNext = false;
        await this.#invalidate((1 - file) as 0 | 1);
        // Only to give the space back: what lies past logLength is never read.
        if (store.resizable && store.size > this.#logLength) await store.truncate(this.#logLength).catch(() => undefined);
      } else {
        const store = await this.#store(this.#file);
        await this.#writeAll(store, this.#logLength, appendRecords);
        await store.flush();
        const generation = this.#generation + 1;
        await store.write((generation % 2) * HEADER_SLOT, this.#encodeHeader(generation, this.#epoch, this.#logLength + appendBytes, dirty));
        await store.flush();
        this.#generation = generation;
        this.#logLength += appendBytes;
        for (const [p, n] of sizes) {
          if (n > 0) this.#recordBytes.set(p, n);
          else this.#recordBytes.delete(p);
        }
        this.#liveBytes = live;
      }
    } catch (e) {
      // Nothing of this snapshot is known to be durable: write its pages again next time, as a
      // compaction into the other file, under a generation above any this attempt may have left.
      this.#epoch = priorEpoch;
      this.#generation += 1;
      for (const p of changed) this.#changed.add(p);
      this.#compactNext = true;
      throw e;
    }
  }

  /**
   * Zero the header slots of the file that is no longer current, so that if the current one is
   * ever cut short or damaged, opening finds no header at all (corrupt) instead of falling back to
   * an old epoch (a wrong "clean"). The zeros keep the file non-empty: a bitmap that has bytes
   * but no header is never taken for a new one.
   */
  async #invalidate(file: 0 | 1): Promise<void> {
    const store = await this.#store(file);
    await store.write(0, new Uint8Array(LOG_START));
    await store.flush();
    this.#otherValid = false;
  }

  async #writeAll(store: Store, offset: number, records: readonly Uint8Array[]): Promise<void> {
    let i = 0;
    while (i < records.length) {
      let n = 0, j = i;
      while (j < records.length && (n === 0 || n + records[j]!.length <= IO_CHUNK)) n += records[j++]!.length;
      const buf = new Uint8Array(n);
      let at = 0;
      for (let k = i; k < j; k++) {
        buf.set(records[k]!, at);
        at += records[k]!.length;
      }
      await store.write(offset, buf);
      offset += n;
      i = j;
    }
  }

  async #store(file: 0 | 1): Promise<Store> {
    let s = this.#stores[file];
    if (s === null) {
      const created = !(await this.#ns.exists(this.#names[file]));
      s = await this.#ns.open(this.#names[file], { create: true });
      this.#stores[file] = s;
      if (created) await this.#ns.sync();
    }
    return s;
  }

  #corrupt(file: string, detail: string): StrataError {
    return corrupt(`Out-of-sync bitmap ${file}`, detail, OUT_OF_SYNC_ADVICE);
  }

  async #readHeaders(file: 0 | 1, store: Store): Promise<{ valid: Header[]; newer: { generation: number; version: number }[] }> {
    const valid: Header[] = [];
    const newer: { generation: number; version: number }[] = [];
    for (let slot = 0; slot < 2; slot++) {
      const at = slot * HEADER_SLOT;
      if (store.size < at + RECORD_OVERHEAD + HEADER_PAYLOAD) continue;
      const bytes = await store.read(at, RECORD_OVERHEAD + HEADER_PAYLOAD);
      const head = decodeHead(bytes, MAGIC_OUT_OF_SYNC, HEADER_PAYLOAD);
      if (!head || head.kind !== KIND_HEADER || head.length !== HEADER_PAYLOAD || !checksumOk(bytes, head.length)) continue;
      if (new DataView(bytes.buffer, bytes.byteOffset + RECORD_HEADER + 20, 4).getUint32(0, true) !== 0) continue;
      if (!readsVersion('outOfSync', head.version)) {
        newer.push({ generation: head.seq, version: head.version });
        continue;
      }
      const v = new DataView(bytes.buffer, bytes.byteOffset + RECORD_HEADER, HEADER_PAYLOAD);
      valid.push({
        file, generation: head.seq, epoch: v.getUint32(0, true), blockSize: v.getUint32(4, true), size: u64(v, 8), pageBits: v.getUint32(16, true),
        logLength: u64(v, 24), dirtyBlocks: u64(v, 32),
      });
    }
    return { valid, newer };
  }

  async #load(): Promise<void> {
    const headers: Header[] = [];
    const newer: { generation: number; version: number; name: string }[] = [];
    let written = false;
    for (const file of [0, 1] as const) {
      const name = this.#names[file];
      if (!(await this.#ns.exists(name))) continue;
      const store = await this.#ns.open(name, { readOnly: this.#ns.readOnly });
      this.#stores[file] = store;
      if (store.size > 0) written = true;
      const h = await this.#readHeaders(file, store);
      headers.push(...h.valid);
      for (const n of h.newer) newer.push({ ...n, name });
    }
    let best: Header | null = null;
    for (const h of headers) if (!best || h.generation > best.generation) best = h;
    const newest = newer.find((n) => !best || n.generation > best.generation);
    if (newest) throw newerVersion('outOfSync', `Out-of-sync bitmap ${newest.name}`, newest.version);
    if (!best) {
      if (written) throw this.#corrupt(this.#name, 'no valid header in either file');
      // A new bitmap: all clean, written whole before open resolves.
      this.#headerStale = true;
      this.#created = true;
      await this.#persistNow();
      return;
    }
    this.#otherValid = headers.some((h) => h.file !== best.file);
    const name = this.#names[best.file];
    if (best.pageBits !== PAGE_BITS || best.epoch === 0) throw this.#corrupt(name, `its header describes pages of ${best.pageBits} bits`);
    if (best.size !== this.#size || best.blockSize !== this.#blockSize) {
      throw corrupt(
        `Out-of-sync bitmap ${name}`,
        `it was written for a volume of ${best.size} bytes in ${best.blockSize}-byte blocks, not ${this.#size} bytes in ${this.#blockSize}-byte blocks`,
        OUT_OF_SYNC_ADVICE,
      );
    }
    const store = this.#stores[best.file]!;
    if (!(best.logLength >= LOG_START) || (best.logLength > LOG_START && best.logLength > store.size)) throw this.#corrupt(name, `its log should be ${best.logLength} bytes long but the file has ${store.size}`);
    if (!(best.dirtyBlocks <= this.#blocks)) throw this.#corrupt(name, `its header counts ${best.dirtyBlocks} blocks out of sync, more than the volume's ${this.#blocks}`);
    this.#generation = best.generation;
    this.#epoch = best.epoch;
    this.#file = best.file;
    this.#logLength = best.logLength;
    await this.#readLog(store, name, best);
    let dirty = 0;
    for (const page of this.#pages.values()) dirty += page.count;
    if (dirty !== best.dirtyBlocks) throw this.#corrupt(name, `its pages hold ${dirty} blocks out of sync but its header counts ${best.dirtyBlocks}`);
    this.#dirty = dirty;
    this.#sorted = null;
    if (this.#otherValid && !this.#ns.readOnly) await this.#invalidate((1 - best.file) as 0 | 1);
  }

  async #readLog(store: Store, name: string, h: Header): Promise<void> {
    let chunk: Uint8Array = new Uint8Array(0);
    let chunkAt = LOG_START;
    let pos = LOG_START;
    const view = async (at: number, length: number): Promise<Uint8Array> => {
      if (at < chunkAt || at + length > chunkAt + chunk.length) {
        chunkAt = at;
        chunk = await store.read(at, Math.min(Math.max(length, IO_CHUNK), h.logLength - at));
      }
      return chunk.subarray(at - chunkAt, at - chunkAt + length);
    };
    while (pos < h.logLength) {
      if (h.logLength - pos < RECORD_OVERHEAD) throw this.#corrupt(name, `a record at ${pos} is cut short`);
      const head = decodeHead(await view(pos, RECORD_HEADER), MAGIC_OUT_OF_SYNC, MAX_PAGE_PAYLOAD);
      if (!head || head.kind !== KIND_PAGE || head.length < PAGE_HEAD) throw this.#corrupt(name, `no page record at ${pos}`);
      const total = RECORD_OVERHEAD + head.length;
      if (pos + total > h.logLength) throw this.#corrupt(name, `a record at ${pos} is cut short`);
      const rec = await view(pos, total);
      if (!checksumOk(rec, head.length)) throw this.#corrupt(name, `checksum mismatch in the record at ${pos}`);
      if (!readsVersion('outOfSync', head.version)) throw newerVersion('outOfSync', `Out-of-sync bitmap ${name}`, head.version);
      if (head.seq !== h.epoch) throw this.#corrupt(name, `the record at ${pos} is from epoch ${head.seq}, not ${h.epoch}`);
      this.#applyRecord(rec.subarray(RECORD_HEADER, RECORD_HEADER + head.length), name, pos);
      const p = new DataView(rec.buffer, rec.byteOffset + RECORD_HEADER, 4).getUint32(0, true);
      const old = this.#recordBytes.get(p) ?? 0;
      const present = this.#pages.has(p);
      if (present) this.#recordBytes.set(p, total);
      else this.#recordBytes.delete(p);
      this.#liveBytes += (present ? total : 0) - old;
      pos += total;
    }
  }

  #applyRecord(payload: Uint8Array, name: string, pos: number): void {
    const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
    const p = v.getUint32(0, true), enc = v.getUint16(4, true), count = v.getUint32(8, true), runs = v.getUint32(12, true);
    const bad = (detail: string): StrataError => this.#corrupt(name, `the page record at ${pos} ${detail}`);
    if (p >= this.#pageCount) throw bad(`names page ${p}, past the volume's ${this.#pageCount} pages`);
    if (v.getUint16(6, true) !== 0) throw bad('has reserved bits set');
    const all = this.#bitsIn(p);
    const dataBytes = payload.length - PAGE_HEAD;
    if (enc === ENC_EMPTY || enc === ENC_FULL) {
      if (dataBytes !== 0 || runs !== 0 || count !== (enc === ENC_FULL ? all : 0)) throw bad('does not add up');
      if (enc === ENC_EMPTY) this.#pages.delete(p);
      else this.#pages.set(p, { bits: null, count: all });
      return;
    }
    const bits = new Uint32Array(PAGE_WORDS);
    let n = 0;
    if (enc === ENC_RUNS) {
      if (runs === 0 || runs > MAX_RUNS || dataBytes !== runs * 4) throw bad('has a bad run count');
      let next = 0;
      for (let i = 0; i < runs; i++) {
        const s = v.getUint16(PAGE_HEAD + i * 4, true), len = v.getUint16(PAGE_HEAD + i * 4 + 2, true) + 1;
        if (s < next || s + len > all) throw bad('has runs out of order or past the volume');
        n += setBits(bits, s, s + len);
        next = s + len + 1;
      }
    } else if (enc === ENC_RAW) {
      if (runs !== 0 || dataBytes !== PAGE_BYTES) throw bad('has a bad length');
      for (let i = 0; i < PAGE_WORDS; i++) bits[i] = v.getUint32(PAGE_HEAD + i * 4, true);
      if (all < PAGE_BITS && nextSet(bits, all, PAGE_BITS) >= 0) throw bad('sets bits past the volume');
      for (let i = 0; i < PAGE_WORDS; i++) n += popcount32(bits[i]!);
    } else throw bad(`has encoding ${enc}`);
    if (n !== count || n === 0) throw bad('does not add up');
    this.#pages.set(p, n === all ? { bits: null, count: all } : { bits, count: n });
  }

  async #closeStores(): Promise<void> {
    for (const i of [0, 1] as const) {
      const s = this.#stores[i];
      this.#stores[i] = null;
      if (s) await s.close();
    }
  }

  /**
   * Persists what changed, writes the final header into both slots (so a damaged slot is then
   * detected, not mistaken for a torn write), and closes.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (!this.#ns.readOnly) {
        await this.persist();
        await this.#queue;
        const store = await this.#store(this.#file);
        const generation = this.#generation + 1;
        await store.write((generation % 2) * HEADER_SLOT, this.#encodeHeader(generation, this.#epoch, this.#logLength, this.#dirty));
        await store.flush();
        this.#generation = generation;
      }
    } finally {
      this.#closed = true;
      await this.#closeStores();
    }
  }

  /** Closes without persisting and deletes the bitmap's files. */
  async delete(): Promise<void> {
    this.#closed = true;
    await this.#queue;
    await this.#closeStores();
    await OutOfSync.remove(this.#ns, this.#name);
  }
}
