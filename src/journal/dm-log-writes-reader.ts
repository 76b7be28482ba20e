/**
 * Reads a dm-log-writes log (the Linux target's format, also written by QEMU's blklogwrites) from
 * any Store: the super block, then the entries in file order, with the written data read on
 * demand. Layout and entry numbering: dm-log-writes-format.ts (entry 0 is the first entry after
 * the super block).
 *
 * Which entries count. The super block's nr_entries is only as new as the writer's last update:
 * the kernel rewrites it after a FUA write or a mark and when the target is removed (which logs
 * the mark "dm-log-writes-end"); QEMU rewrites it after every flush entry (and, from QEMU 8.2,
 * every 4096 entries), then flushes the log. Entries written after that update are in the file
 * but not counted, and a writer that reuses a file without truncating it leaves an older log's
 * entries behind the new ones. So:
 * - `entries: 'claimed'` (the default) reads exactly nr_entries entries, as the kernel's
 *   userspace `replay-log` and QEMU's `log-append` do. A claimed entry that is missing, torn or
 *   invalid is a `corrupt` error naming its index and byte offset.
 * - `entries: 'scan'` ignores nr_entries and reads every entry that is valid, from the first until
 *   the end of the file or the first torn or invalid one, for a log whose writer stopped without
 *   a final update. `survey()` says how many entries each way, without reading them twice.
 *
 * Hostile input: every size is bounded before it is used (sector size 512..64 KiB, a mark label
 * within its sector, an entry's data within the file); memory is at most one chunk (1 MiB by
 * default) whatever the fields say; errors are StrataError with `invalid-argument` (not a
 * dm-log-writes log), `unsupported` (version, sector size) or `corrupt`.
 */
import { StrataError } from '../errors.js';
import type { Store } from '../store/store.js';
import { DM_LOG_SUPER_BYTES, entryEnd, parseEntryHeader, parseSuper, type DmLogEntry } from './dm-log-writes-format.js';

export type DmLogEntriesMode = 'claimed' | 'scan';

export interface DmLogOpenOptions {
  /** Which entries make up the log (see the top of this file). Default 'claimed'. */
  entries?: DmLogEntriesMode;
  /** Names the log in messages (a path, a store name). Default "the dm-log-writes log". */
  label?: string;
  /** Bytes per read while walking entries, and the largest batch {@link DmLogReader.batches} returns. Default 1 MiB. */
  chunkBytes?: number;
  /**
   * How a user asks for scan mode, for messages: a CLI passes its flag ("--scan"). Default
   * "entries 'scan'".
   */
  scanHint?: string;
  signal?: AbortSignal;
}

/** Why a walk over the entries stopped. */
export type DmLogStop =
  /** the file ended exactly after an entry */
  | 'end-of-file'
  /** nr_entries entries were read (claimed mode) */
  | 'claimed'
  /** an all-zero header sector: where a writer's log ended on a device or file that was zero */
  | 'empty-entry'
  /** the file ends inside an entry's header or data: a torn last entry */
  | 'torn-entry'
  /** a header sector that is not a valid entry */
  | 'invalid-entry';

export interface DmLogSurvey {
  /** nr_entries in the super block */
  claimed: number;
  /** valid entries from the start of the file, ignoring nr_entries, until `stop` */
  found: number;
  /** file offset just after entry found-1 (where the next entry would start) */
  endOffset: number;
  stop: Exclude<DmLogStop, 'claimed'>;
  /** what was wrong at `endOffset` when stop is torn-entry or invalid-entry */
  detail?: string;
}

/**
 * Entries that follow one another in the file, with their data: `bytes` holds the file from
 * `offset` on, so an entry's data is `bytes.subarray(e.dataOffset - offset, e.dataOffset - offset + e.dataLength)`.
 * An entry whose data alone exceeds the chunk size comes alone with `bytes` null; read its data
 * in pieces with {@link DmLogReader.readData}.
 */
export interface DmLogBatch {
  entries: DmLogEntry[];
  offset: number;
  bytes: Uint8Array | null;
}

const DEFAULT_CHUNK = 1 << 20;

export class DmLogReader {
  readonly store: Store;
  readonly label: string;
  readonly sectorSize: number;
  /** nr_entries of the super block (exact up to 2^53 - 1). */
  readonly claimedEntries: number;
  /** Store size when opened: entries are read within it. */
  readonly size: number;
  readonly mode: DmLogEntriesMode;
  private readonly chunkBytes: number;
  private readonly scanHint: string;
  private readonly signal: AbortSignal | undefined;

  private constructor(store: Store, label: string, sectorSize: number, claimed: number, size: number, mode: DmLogEntriesMode, chunkBytes: number, scanHint: string, signal?: AbortSignal) {
    this.store = store;
    this.label = label;
    this.sectorSize = sectorSize;
    this.claimedEntries = claimed;
    this.size = size;
    this.mode = mode;
    this.chunkBytes = chunkBytes;
    this.scanHint = scanHint;
    this.signal = signal;
  }

  /**
   * Open a log and check its super block. A zero-length store is an empty log with 512-byte
   * sectors (QEMU creates the log file but writes nothing until the first write is logged).
   */
  static async open(store: Store, options: DmLogOpenOptions = {}): Promise<DmLogReader> {
    const label = options.label ?? 'the dm-log-writes log';
    const mode = options.entries ?? 'claimed';
    if (mode !== 'claimed' && mode !== 'scan') throw new StrataError('invalid-argument', `entries must be 'claimed' or 'scan', not ${String(mode)}.`);
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK;
    if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 65536 || chunkBytes > 1 << 30) {
      throw new StrataError('invalid-argument', `chunkBytes must be an integer from 65536 to 2^30, not ${chunkBytes}.`);
    }
    const scanHint = options.scanHint ?? "entries 'scan'";
    const size = store.size;
    if (size === 0) return new DmLogReader(store, label, 512, 0, 0, mode, chunkBytes, scanHint, options.signal);
    if (size < DM_LOG_SUPER_BYTES) {
      throw new StrataError('corrupt', `${label} is ${size} bytes long, shorter than a dm-log-writes super block (${DM_LOG_SUPER_BYTES} bytes): it is truncated. Copy it again in full.`);
    }
    const head = new Uint8Array(DM_LOG_SUPER_BYTES);
    await store.readInto(0, head);
    const sb = parseSuper(head, label);
    if (size < sb.sectorSize) {
      throw new StrataError('corrupt', `${label} is ${size} bytes long, shorter than its own ${sb.sectorSize}-byte super block sector: it is truncated. Copy it again in full.`);
    }
    const fit = Math.floor((size - sb.sectorSize) / sb.sectorSize);
    if (mode === 'claimed' && sb.nrEntries > fit) {
      throw new StrataError(
        'corrupt',
        `${label}: its super block claims ${sb.nrEntries} entries, but ${size} bytes hold at most ${fit} ${sb.sectorSize}-byte entries; the log is truncated or its super block is damaged. Copy it again in full, or read it with ${scanHint} to take the entries that are complete.`,
      );
    }
    return new DmLogReader(store, label, sb.sectorSize, sb.nrEntries, size, mode, chunkBytes, scanHint, options.signal);
  }

  /**
   * The entries in file order, without their data (read it with {@link readData}, or use
   * {@link batches}). The file is still read sequentially a chunk at a time.
   */
  async *entries(): AsyncGenerator<DmLogEntry, void, undefined> {
    for await (const batch of this.batches()) yield* batch.entries;
  }

  /**
   * The entries in file order with their data, a chunk at a time: one read per batch (of up to
   * `chunkBytes`), so a caller replaying a log makes few large reads.
   */
  async *batches(): AsyncGenerator<DmLogBatch, void, undefined> {
    const stop = yield* this.walk();
    if (this.mode === 'claimed' && stop.stop !== 'claimed') this.failClaimed(stop);
  }

  /**
   * Walk the whole file, ignoring nr_entries, and say how many valid entries it holds and why the
   * walk stopped. Reads the file once, a chunk at a time; keeps no entries.
   */
  async survey(): Promise<DmLogSurvey> {
    const gen = this.walk(Infinity);
    let r = await gen.next();
    while (!r.done) r = await gen.next();
    const s = r.value;
    const out: DmLogSurvey = { claimed: this.claimedEntries, found: s.found, endOffset: s.endOffset, stop: s.stop as DmLogSurvey['stop'] };
    if (s.detail !== undefined) out.detail = s.detail;
    return out;
  }

  /**
   * Read `target.length` bytes of `entry`'s data, from byte `at` of it, into `target`.
   * For one entry or a piece of a large one; {@link batches} reads many entries at once.
   */
  async readData(entry: DmLogEntry, target: Uint8Array, at = 0): Promise<void> {
    if (!Number.isSafeInteger(at) || at < 0 || at + target.length > entry.dataLength) {
      throw new StrataError('invalid-argument', `Entry ${entry.index} has ${entry.dataLength} bytes of data; cannot read ${target.length} bytes from byte ${at} of it.`);
    }
    if (entryEnd(entry) > this.size) throw new StrataError('invalid-argument', `Entry ${entry.index} is not an entry of ${this.label} (it ends past the file).`);
    if (target.length === 0) return;
    await this.store.readInto(entry.dataOffset + at, target);
  }

  private failClaimed(s: WalkEnd): never {
    const at = `entry ${s.found} at byte ${s.endOffset}`;
    const keep =
      s.found > 0
        ? `The ${s.found} entries before it (0..${s.found - 1}) are intact: read them with ${this.scanHint}, or copy the log again in full.`
        : 'No entry before it is intact: copy the log again in full.';
    const what =
      s.stop === 'torn-entry'
        ? `the file ends inside ${at} (${s.detail}), but the super block claims ${this.claimedEntries} entries: the log is truncated.`
        : s.stop === 'end-of-file'
          ? `the file ends before ${at}, but the super block claims ${this.claimedEntries} entries: the log is truncated.`
          : `${at} is damaged: ${s.detail}. The super block claims ${this.claimedEntries} entries.`;
    throw new StrataError('corrupt', `${this.label}: ${what} ${keep}`);
  }

  /**
   * The one loop over the file: chunks of up to chunkBytes from the current entry on; every entry
   * wholly inside the chunk goes into the batch; an entry larger than a chunk goes alone, its data
   * not read. Stops after `limit` entries or at the first entry that is torn or invalid.
   */
  private async *walk(limit = this.mode === 'claimed' ? this.claimedEntries : Infinity): AsyncGenerator<DmLogBatch, WalkEnd, undefined> {
    const ss = this.sectorSize;
    let pos = this.size === 0 ? 0 : ss;
    let index = 0;
    for (;;) {
      if (this.signal?.aborted) throw new StrataError('aborted', `Reading ${this.label} was interrupted.`);
      if (index >= limit) return { found: index, endOffset: pos, stop: 'claimed' };
      const left = this.size - pos;
      if (left === 0) return { found: index, endOffset: pos, stop: 'end-of-file' };
      if (left < ss) return { found: index, endOffset: pos, stop: 'torn-entry', detail: `only ${left} bytes of its ${ss}-byte header are in the file` };
      const chunk = new Uint8Array(Math.min(this.chunkBytes, left));
      await this.store.readInto(pos, chunk);
      const entries: DmLogEntry[] = [];
      let at = 0;
      let end: WalkEnd | undefined;
      while (index < limit && chunk.length - at >= ss) {
        const r = parseEntryHeader(chunk.subarray(at, at + ss), index, pos + at);
        if ('invalid' in r) {
          end = { found: index, endOffset: pos + at, stop: r.empty ? 'empty-entry' : 'invalid-entry', detail: r.invalid };
          break;
        }
        const e = r.entry;
        if (entryEnd(e) > this.size) {
          end = { found: index, endOffset: pos + at, stop: 'torn-entry', detail: `its ${e.dataLength} bytes of data run ${entryEnd(e) - this.size} bytes past the end of the file` };
          break;
        }
        if (entryEnd(e) > pos + chunk.length) {
          if (entries.length === 0) {
            // Larger than a chunk: alone, data not read.
            index++;
            yield { entries: [e], offset: e.dataOffset, bytes: null };
            pos = entryEnd(e);
            at = -1;
          }
          break;
        }
        entries.push(e);
        index++;
        at = entryEnd(e) - pos;
      }
      if (at === -1) continue;
      if (entries.length > 0) {
        yield { entries, offset: pos, bytes: chunk.subarray(0, at) };
        pos += at;
      }
      if (end) return end;
    }
  }
}

interface WalkEnd {
  found: number;
  endOffset: number;
  stop: DmLogStop;
  detail?: string;
}

/** Open a dm-log-writes log on a Store (see {@link DmLogReader}). */
export function openDmLog(store: Store, options?: DmLogOpenOptions): Promise<DmLogReader> {
  return DmLogReader.open(store, options);
}
