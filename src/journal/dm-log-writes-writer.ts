/**
 * Writes a dm-log-writes log (layout: dm-log-writes-format.ts) on any Store, for `journal export`
 * and for tests: the super block, then entries appended in order, buffered into large writes.
 *
 * Durability follows the writers it imitates. The super block's nr_entries is rewritten by
 * {@link DmLogWriter.sync} and {@link DmLogWriter.finish}, and after every FLUSH entry when
 * `syncOnFlush` is set (what QEMU's blklogwrites does); each of those makes the entries durable
 * first (write, store flush) and only then the super block that counts them (write, store flush),
 * so a crash never leaves a super block that claims entries the file does not hold.
 * `finish({ endMark: true })` also logs the mark "dm-log-writes-end" first, as the kernel does
 * when the target is removed.
 *
 * A resizable store is truncated to nothing first, so no entry of an older log stays behind the
 * new one (a reader scanning past nr_entries would take it for part of this log). On a fixed-size
 * store (a raw device), finish() writes a zero sector after the last entry instead, where there
 * is room: readers stop at an all-zero entry.
 */
import { StrataError } from '../errors.js';
import type { Store } from '../store/store.js';
import { DM_LOG_END_MARK, DM_LOG_ENTRY_BYTES, DM_LOG_KNOWN_FLAGS, DmLogFlag, encodeEntryHeader, encodeSuper } from './dm-log-writes-format.js';

export interface DmLogWriterOptions {
  /** The log's sector size: 512 (default), 1024, 2048 or 4096. Writes are in whole sectors of it. */
  sectorSize?: number;
  /** Bytes gathered before one store write (default 1 MiB); data larger than this is written directly. */
  batchBytes?: number;
  /** After each FLUSH entry, make the log durable and update nr_entries (QEMU's behaviour). Default false. */
  syncOnFlush?: boolean;
  /** Names the log in messages. */
  label?: string;
}

/** One entry to append. Sectors are in units of the log's sector size. */
export interface DmLogAppend {
  /** DmLogFlag bits; default 0 (a plain write). */
  flags?: number;
  /** First sector written or discarded; default 0. */
  sector?: number;
  /** Sectors written or discarded; for a write it defaults to the data's length in sectors. */
  nrSectors?: number;
  /** The label of a MARK entry (flags MARK, no data). */
  mark?: string;
}

const encoder = new TextEncoder();

export class DmLogWriter {
  readonly store: Store;
  readonly sectorSize: number;
  readonly label: string;
  private readonly syncOnFlush: boolean;
  private readonly buf: Uint8Array;
  /** File offset of buf[0]. */
  private bufStart: number;
  private bufLen = 0;
  private count = 0;
  private finished = false;
  private failed: unknown = undefined;
  private tail: Promise<unknown> = Promise.resolve();

  private constructor(store: Store, sectorSize: number, batchBytes: number, syncOnFlush: boolean, label: string) {
    this.store = store;
    this.sectorSize = sectorSize;
    this.syncOnFlush = syncOnFlush;
    this.label = label;
    this.buf = new Uint8Array(batchBytes);
    this.bufStart = sectorSize;
  }

  /** Start a new, empty log on `store` (its old content is dropped). */
  static async create(store: Store, options: DmLogWriterOptions = {}): Promise<DmLogWriter> {
    const ss = options.sectorSize ?? 512;
    if (![512, 1024, 2048, 4096].includes(ss)) {
      throw new StrataError('invalid-argument', `sectorSize must be 512, 1024, 2048 or 4096 (the logical block sizes dm-log-writes logs), not ${ss}.`);
    }
    const batchBytes = options.batchBytes ?? 1 << 20;
    if (!Number.isSafeInteger(batchBytes) || batchBytes < ss || batchBytes > 1 << 30 || batchBytes % ss !== 0) {
      throw new StrataError('invalid-argument', `batchBytes must be a multiple of the sector size (${ss}) up to 2^30, not ${batchBytes}.`);
    }
    const w = new DmLogWriter(store, ss, batchBytes, options.syncOnFlush ?? false, options.label ?? 'the dm-log-writes log');
    if (store.resizable) await store.truncate(0);
    else if (store.size < 2 * ss) {
      throw new StrataError('out-of-range', `${w.label} is a fixed-size store of ${store.size} bytes; a dm-log-writes log needs at least ${2 * ss} bytes (a super block and one entry).`);
    }
    await store.write(0, encodeSuper(ss, 0));
    return w;
  }

  /** Entries appended so far (the next entry's index). */
  get entries(): number {
    return this.count;
  }

  /** Bytes of log so far, including what is still buffered. */
  get size(): number {
    return this.bufStart + this.bufLen;
  }

  /**
   * Append one entry; resolves to its index. A write's data must be whole sectors; a discard,
   * flush or mark carries none. Calls may overlap: they run in the order they were made.
   */
  async append(entry: DmLogAppend, data?: Uint8Array): Promise<number> {
    const checked = this.check(entry, data);
    return this.run(() => this.put(checked.sector, checked.nrSectors, checked.flags, checked.label, data));
  }

  /** A write of `data` at byte `offset` of the device (both in whole sectors); `flags` may add FUA, FLUSH, METADATA. */
  async write(offset: number, data: Uint8Array, flags = 0): Promise<number> {
    return this.append({ flags, sector: this.toSectors(offset, 'offset'), nrSectors: this.toSectors(data.length, 'length') }, data);
  }

  /** A discard of `length` bytes at byte `offset` of the device (both in whole sectors). */
  async discard(offset: number, length: number): Promise<number> {
    return this.append({ flags: DmLogFlag.DISCARD, sector: this.toSectors(offset, 'offset'), nrSectors: this.toSectors(length, 'length') });
  }

  /** A flush entry (no data). */
  flush(): Promise<number> {
    return this.append({ flags: DmLogFlag.FLUSH });
  }

  /** A mark with `label` (UTF-8, no NUL, at most sectorSize - 33 bytes, as the kernel keeps). */
  mark(label: string): Promise<number> {
    return this.append({ flags: DmLogFlag.MARK, mark: label });
  }

  /** Make every appended entry durable and count them in the super block. */
  sync(): Promise<void> {
    return this.run(() => this.syncNow());
  }

  /**
   * Write out everything, count it in the super block and flush the store. With `endMark`, log
   * the kernel's "dm-log-writes-end" mark first. Appending afterwards is an error.
   */
  finish(options: { endMark?: boolean } = {}): Promise<void> {
    return this.run(async () => {
      if (options.endMark) await this.put(0, 0, DmLogFlag.MARK, encoder.encode(DM_LOG_END_MARK), undefined);
      await this.drain();
      const end = this.bufStart;
      if (!this.store.resizable && end + this.sectorSize <= this.store.size) await this.store.write(end, new Uint8Array(this.sectorSize));
      await this.syncNow();
      this.finished = true;
    });
  }

  private run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.tail.then(() => {
      if (this.failed !== undefined) throw new StrataError('io', `${this.label} could not be written earlier (${errorText(this.failed)}); create it again.`);
      if (this.finished) throw new StrataError('invalid-argument', `${this.label} is finished; create a new log to write more.`);
      return fn().catch((e: unknown) => {
        this.failed = e;
        throw e;
      });
    });
    this.tail = p.catch(() => undefined);
    return p;
  }

  private toSectors(bytes: number, what: string): number {
    if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes % this.sectorSize !== 0) {
      throw new StrataError('invalid-argument', `The ${what} ${bytes} is not a whole number of ${this.sectorSize}-byte sectors.`);
    }
    return bytes / this.sectorSize;
  }

  private check(entry: DmLogAppend, data: Uint8Array | undefined): { sector: number; nrSectors: number; flags: number; label?: Uint8Array } {
    const ss = this.sectorSize;
    const flags = entry.flags ?? 0;
    if (!Number.isInteger(flags) || flags < 0 || (flags & ~DM_LOG_KNOWN_FLAGS) !== 0) {
      throw new StrataError('invalid-argument', `Entry flags 0x${flags.toString(16)} have bits dm-log-writes does not define (FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16).`);
    }
    const sector = entry.sector ?? 0;
    if (!Number.isSafeInteger(sector) || sector < 0) throw new StrataError('invalid-argument', `Entry sector must be a non-negative integer, not ${sector}.`);
    if (flags & DmLogFlag.MARK) {
      if (flags !== DmLogFlag.MARK || data !== undefined || (entry.nrSectors ?? 0) !== 0 || entry.mark === undefined) {
        throw new StrataError('invalid-argument', 'A mark entry has only the MARK flag and a label: no data, no sectors.');
      }
      const label = encoder.encode(entry.mark);
      const max = ss - DM_LOG_ENTRY_BYTES - 1;
      if (label.length > max || label.includes(0)) {
        throw new StrataError('invalid-argument', `A mark label is at most ${max} bytes of UTF-8 without NUL (${ss}-byte sectors); this one is ${label.length} bytes${label.includes(0) ? ' with a NUL' : ''}. Use a shorter label.`);
      }
      return { sector, nrSectors: 0, flags, label };
    }
    if (entry.mark !== undefined) throw new StrataError('invalid-argument', 'Only a MARK entry has a label.');
    let nrSectors: number;
    if (flags & DmLogFlag.DISCARD) {
      if (data !== undefined) throw new StrataError('invalid-argument', 'A discard entry carries no data.');
      nrSectors = entry.nrSectors ?? 0;
      if (!Number.isSafeInteger(nrSectors) || nrSectors < 1) throw new StrataError('invalid-argument', `A discard needs nrSectors of at least 1, not ${nrSectors}.`);
    } else {
      const have = data?.length ?? 0;
      if (have % ss !== 0) throw new StrataError('invalid-argument', `Write data of ${have} bytes is not a whole number of ${ss}-byte sectors.`);
      nrSectors = entry.nrSectors ?? have / ss;
      if (nrSectors !== have / ss) throw new StrataError('invalid-argument', `nrSectors ${nrSectors} does not match the ${have} bytes of data (${have / ss} sectors).`);
      if (flags === 0 && nrSectors === 0) throw new StrataError('invalid-argument', 'A write entry needs data (an entry with no flags and no sectors is what readers take for the end of a log).');
    }
    if (!Number.isSafeInteger((sector + nrSectors) * ss)) throw new StrataError('invalid-argument', `Sector ${sector} + ${nrSectors} sectors is beyond 2^53 bytes.`);
    return { sector, nrSectors, flags };
  }

  private async put(sector: number, nrSectors: number, flags: number, label: Uint8Array | undefined, data: Uint8Array | undefined): Promise<number> {
    const ss = this.sectorSize;
    if (this.bufLen + ss > this.buf.length) await this.drain();
    encodeEntryHeader(this.buf.subarray(this.bufLen, this.bufLen + ss), sector, nrSectors, flags, label);
    this.bufLen += ss;
    if (data && data.length > 0) {
      if (data.length > this.buf.length - this.bufLen) await this.drain();
      if (data.length >= this.buf.length) {
        await this.store.write(this.bufStart, data);
        this.bufStart += data.length;
      } else {
        this.buf.set(data, this.bufLen);
        this.bufLen += data.length;
      }
    }
    const index = this.count++;
    if (this.syncOnFlush && flags & DmLogFlag.FLUSH) await this.syncNow();
    return index;
  }

  private async drain(): Promise<void> {
    if (this.bufLen === 0) return;
    await this.store.write(this.bufStart, this.buf.subarray(0, this.bufLen));
    this.bufStart += this.bufLen;
    this.bufLen = 0;
  }

  private async syncNow(): Promise<void> {
    await this.drain();
    await this.store.flush();
    await this.store.write(0, encodeSuper(this.sectorSize, this.count));
    await this.store.flush();
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Start a new dm-log-writes log on a Store (see {@link DmLogWriter}). */
export function createDmLog(store: Store, options?: DmLogWriterOptions): Promise<DmLogWriter> {
  return DmLogWriter.create(store, options);
}
