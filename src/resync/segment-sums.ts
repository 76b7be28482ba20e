import { StrataError } from '../errors.js';
import type { Volume } from '../volume/volume.js';
import type { ObserverHandle, VolumeEvent, WriteObserver } from '../volume/write-observer.js';
import { hashSegments128, loadKernels } from '../wasm/index.js';
import { checkSegmentSize, readSums, segmentCountOf, writeSums, MAX_SEGMENTS, type SumsBinding, type SumsTable } from './sums-format.js';

/**
 * Segment checksums with valid flags, kept per volume: an XXH3-128 of every segment (default
 * 1 MiB; a power of two >= the block size, so a block never straddles two segments) and a flag
 * saying whether it describes the segment's current content. Resync trusts a valid checksum
 * instead of reading the segment.
 *
 * THE INVARIANT (data first): a valid flag that is durable never describes content other than
 * the segment's durable content. It holds because
 * - a write observer (sync) clears the flags of every segment a write touches, and its
 *   `commit()` — which every layer flush calls before it records anything — persists the
 *   cleared flags first: a write's data becomes durable (its map record) only after its flags
 *   are durably cleared;
 * - a recompute (`refresh`) notes each segment's generation (bumped by every write touching it)
 *   before reading it, flushes the volume after hashing (so what it read is durable), and marks
 *   valid only the segments whose generation did not move; only then does it persist them.
 *
 * Guard against writers that do not attach the observer (another program, an older
 * stratadisk, a command that opens the volume plainly): the record carries an "open" mark and a
 * binding — the volume's uuid, its layer chain and the active layer's content ID (a hash of
 * every block the active layer holds, kept incrementally by the volume itself). Attaching
 * writes open=1 before anything else can become durable; a clean `close()` writes open=0 with
 * the binding of the content it describes. A later open trusts the flags only when the record
 * is closed and the binding equals the volume's now. So a foreign writer that changed anything
 * (different content ID or chain) makes every flag invalid, whatever it did, with no change to
 * the volume format and no refusal of writers that know nothing of resync (a manifest
 * requirement, as the write log registers, would refuse every such writer: too strong for a
 * cache that can always be rebuilt). A crash while attached leaves open=1: the durable flags
 * are still truthful (the invariant), but nothing on the store proves no other writer came
 * after the crash, so they are dropped too and rehashed in the background.
 *
 * Sizes come from the volume (trusted) and the record is checked against them before it is
 * used; a damaged, truncated or hostile record means "all invalid", never an error or a large
 * allocation (sums-format.ts).
 */
export const DEFAULT_SEGMENT_SIZE = 1024 * 1024;
/** Bytes read and hashed per batch (many segments per read; one buffer reused). */
const DEFAULT_BATCH_BYTES = 16 * 1024 * 1024;
/** Bytes hashed between two durable checkpoints of a refresh (flush, then persist). */
const SETTLE_BYTES = 256 * 1024 * 1024;

export interface SegmentSumsOptions {
  /** default max(1 MiB, block size) */
  segmentSize?: number;
  /** recompute invalid segments in the background after this many ms without writes (off when absent) */
  idleMs?: number;
  /** bytes read per batch (default 16 MiB) */
  batchBytes?: number;
}

export interface RefreshOptions {
  signal?: AbortSignal;
  /** segments hashed so far, invalid segments at the start */
  onProgress?: (done: number, total: number) => void;
}

export interface RefreshResult {
  segments: number;
  bytesHashed: number;
  /** segments left invalid (written while being hashed) */
  invalid: number;
}

export class SegmentSums {
  readonly segmentSize: number;
  readonly count: number;
  readonly volumeSize: number;
  /** one byte per segment, 1 = valid */
  readonly valid: Uint8Array;
  /** 16 bytes per segment (meaningful where valid) */
  readonly hashes: Uint8Array;
  /** why the stored record was not trusted at open (null: it was, or there was none) */
  readonly distrust: string | null;
  private readonly gen: Uint32Array;
  private handle: ObserverHandle | null = null;
  private generation: number;
  private persistChain: Promise<void> = Promise.resolve();
  private clearedSincePersist = false;
  private closed = false;
  private failed: unknown = null;
  private readonly batchBytes: number;
  private offered: { i: number; gen: number; hash: Uint8Array }[] = [];
  private idle: { ms: number; timer: ReturnType<typeof setTimeout> | null; last: number; abort: AbortController | null; running: Promise<unknown> | null } | null = null;
  /** the background refresh's last failure, if any */
  backgroundError: unknown = null;

  private constructor(readonly volume: Volume, table: SumsTable, generation: number, distrust: string | null, batchBytes: number) {
    this.segmentSize = table.segmentSize;
    this.count = table.count;
    this.volumeSize = table.volumeSize;
    this.valid = table.valid;
    this.hashes = table.hashes;
    this.gen = new Uint32Array(table.count);
    this.generation = generation;
    this.distrust = distrust;
    this.batchBytes = batchBytes;
  }

  /**
   * Load the volume's checksums (trusting them only as the file comment says) and, when the
   * volume is writable, attach the observer that keeps them current. Call `close()` before the
   * volume's own close, or the next open treats every segment as unknown.
   */
  static async open(volume: Volume, options: SegmentSumsOptions = {}): Promise<SegmentSums> {
    await loadKernels();
    const seg = options.segmentSize ?? Math.max(DEFAULT_SEGMENT_SIZE, volume.blockSize);
    checkSegmentSize(seg, volume.blockSize);
    const count = segmentCountOf(volume.size, seg);
    if (count > MAX_SEGMENTS) throw new StrataError('invalid-argument', `${volume.label}: ${count} segments of ${seg} bytes are too many to track; choose a larger segment size.`);
    const batch = Math.max(seg, Math.floor((options.batchBytes ?? DEFAULT_BATCH_BYTES) / seg) * seg);
    const { best, newestGeneration, problems } = await readSums(volume.ns, volume.size, seg);
    const now = bindingOf(volume);
    let distrust: string | null = null;
    let table: SumsTable;
    if (best && !best.table.open && sameBinding(best.table.binding, now)) {
      table = best.table;
    } else {
      if (best) distrust = best.table.open ? 'the volume was not closed cleanly by a writer that kept its checksums' : 'the volume changed since its checksums were written';
      else if (problems.length > 0) distrust = problems[0]!.message;
      table = { volumeSize: volume.size, segmentSize: seg, count, open: false, binding: now, valid: new Uint8Array(count), hashes: new Uint8Array(count * 16) };
    }
    const sums = new SegmentSums(volume, table, newestGeneration, distrust, batch);
    if (!volume.readOnly) {
      sums.handle = volume.observe(sums.observer());
      // the open mark is durable before any write of this open can be (a flush waits for it in commit)
      try {
        await sums.persist(true, true);
      } catch (e) {
        // nowhere to keep them: the volume goes on without (its flushes must not fail for this)
        await sums.handle.detach();
        sums.handle = null;
        throw e;
      }
      if (options.idleMs !== undefined) sums.startIdle(options.idleMs);
    }
    return sums;
  }

  /**
   * Can the flags be relied on now? Not after a failure to write them, once closed, or on a
   * writable volume whose observer is gone (writes would no longer clear them).
   */
  get usable(): boolean {
    return this.failed === null && !this.closed && (this.volume.readOnly || (this.handle?.attached ?? false));
  }

  /** Segments whose flag is valid. */
  get validCount(): number {
    let n = 0;
    for (let i = 0; i < this.count; i++) n += this.valid[i]!;
    return n;
  }

  /** Byte range of segment `i`. */
  range(i: number): { offset: number; length: number } {
    const offset = i * this.segmentSize;
    return { offset, length: Math.min(this.segmentSize, this.volumeSize - offset) };
  }

  /**
   * Hash the invalid segments (in batches of consecutive ones, one read and one kernel call
   * per batch), then make them valid durably: the volume is flushed first, segments written
   * meanwhile stay invalid. On a read-only volume nothing is persisted.
   */
  async refresh(options: RefreshOptions = {}): Promise<RefreshResult> {
    this.assertUsable();
    const todo: number[] = [];
    for (let i = 0; i < this.count; i++) if (!this.valid[i]) todo.push(i);
    const total = todo.length;
    const seg = this.segmentSize;
    const perBatch = this.batchBytes / seg;
    const buf = new Uint8Array(Math.min(this.batchBytes, todo.length * seg, this.volumeSize));
    const out = new Uint8Array(perBatch * 16);
    let pending: { i: number; gen: number; hash: Uint8Array }[] = [];
    let pendingBytes = 0;
    let hashed = 0;
    let done = 0;
    options.onProgress?.(0, total);
    for (let k = 0; k < todo.length; ) {
      if (options.signal?.aborted) break;
      this.assertUsable();
      // a run of consecutive invalid segments, at most one batch
      let n = 1;
      while (k + n < todo.length && n < perBatch && todo[k + n] === todo[k]! + n) n++;
      const first = todo[k]!;
      const gens = this.gen.slice(first, first + n);
      const off = first * seg;
      const len = Math.min(n * seg, this.volumeSize - off);
      const view = buf.subarray(0, len);
      await this.volume.readInto(off, view);
      hashSegments128(view, seg, out);
      for (let j = 0; j < n; j++) pending.push({ i: first + j, gen: gens[j]!, hash: out.slice(j * 16, j * 16 + 16) });
      hashed += len;
      pendingBytes += len;
      done += n;
      k += n;
      if (pendingBytes >= SETTLE_BYTES) {
        await this.settle(pending);
        pending = [];
        pendingBytes = 0;
      }
      options.onProgress?.(done, total);
    }
    if (pending.length > 0) await this.settle(pending);
    return { segments: done, bytesHashed: hashed, invalid: this.count - this.validCount };
  }

  /** The generations of segments `list` now: take them before reading the segments to hash them. */
  generations(list: readonly number[]): Uint32Array {
    const out = new Uint32Array(list.length);
    list.forEach((i, k) => (out[k] = this.gen[i]!));
    return out;
  }

  /**
   * Checksums someone else computed from this volume (a resync side hashing on the fly), with
   * the generations taken before the read: they become valid at the next `settleOffered()`, as
   * a refresh's would (after a flush, only where no write came since).
   */
  offer(list: readonly number[], hashes: Uint8Array, gens: Uint32Array): void {
    if (this.volume.readOnly || !this.handle) return;
    list.forEach((i, k) => this.offered.push({ i, gen: gens[k]!, hash: hashes.slice(k * 16, k * 16 + 16) }));
  }

  /** Flush the volume, then make the offered checksums valid and persist them. */
  async settleOffered(): Promise<void> {
    const pending = this.offered;
    this.offered = [];
    if (pending.length > 0) await this.settle(pending);
    else if (!this.volume.readOnly) await this.volume.flush();
  }

  /** Mark hashed segments valid once what was hashed is durable, then persist the flags. */
  private async settle(pending: { i: number; gen: number; hash: Uint8Array }[]): Promise<void> {
    if (!this.volume.readOnly) await this.volume.flush();
    for (const p of pending) {
      if (this.gen[p.i] !== p.gen) continue; // written while being hashed
      this.hashes.set(p.hash, p.i * 16);
      this.valid[p.i] = 1;
    }
    if (!this.volume.readOnly && this.handle) await this.persist(true, true);
  }

  /**
   * Detach the observer and record the checksums as describing the volume's content now
   * (open=0): the next open trusts them if nothing else changed the volume. Call before
   * `volume.close()`.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.stopIdle();
    if (!this.handle) return;
    const h = this.handle;
    try {
      if (this.failed === null && h.attached) {
        await this.volume.flush();
        // the binding before the detach: a write after it changes the content ID (so the next
        // open distrusts the record); one before it cleared its flags (observed)
        const binding = bindingOf(this.volume);
        await h.detach();
        if (this.failed === null) await this.persist(true, false, binding);
      } else {
        await h.detach();
      }
    } finally {
      this.handle = null;
    }
  }

  private observer(): WriteObserver {
    return {
      mode: 'sync',
      onFailure: 'detach',
      observe: (ev: VolumeEvent) => this.onEvent(ev),
      commit: () => this.persist(false, true),
      detached: () => {
        this.handle = null;
      },
    };
  }

  private onEvent(ev: VolumeEvent): void {
    if (ev.type !== 'write') return;
    const bs = this.volume.blockSize;
    const seg = this.segmentSize;
    const r = ev.runs;
    for (let k = 0; k + 1 < r.length; k += 2) {
      const from = Math.floor((r[k]! * bs) / seg);
      const to = Math.floor(((r[k]! + r[k + 1]!) * bs - 1) / seg);
      for (let i = from; i <= to && i < this.count; i++) {
        this.gen[i] = (this.gen[i]! + 1) >>> 0;
        if (this.valid[i]) {
          this.valid[i] = 0;
          this.clearedSincePersist = true;
        }
      }
    }
    if (this.idle) {
      this.idle.last = Date.now();
      if (!this.idle.timer && !this.idle.running) this.armIdle();
    }
  }

  /**
   * Write the table (one at a time, in order). `force` false: only when a flag was cleared since
   * the last persist (the observer's commit). The state is taken when this persist starts.
   */
  private persist(force: boolean, open: boolean, binding?: SumsBinding): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.failed !== null) throw this.failed;
      if (!force && !this.clearedSincePersist) return;
      this.clearedSincePersist = false;
      const table: SumsTable = {
        volumeSize: this.volumeSize,
        segmentSize: this.segmentSize,
        count: this.count,
        open,
        binding: binding ?? { uuid: '', chain: [], contentId: '' },
        valid: this.valid.slice(),
        hashes: this.hashes,
      };
      try {
        await writeSums(this.volume.ns, table, ++this.generation);
      } catch (e) {
        // nothing recorded can be trusted from here on (the open mark stays on the store)
        this.failed = e;
        throw e;
      }
    };
    const p = this.persistChain.then(run);
    this.persistChain = p.catch(() => {});
    return p;
  }

  private assertUsable(): void {
    if (this.failed !== null) throw new StrataError('io', `${this.volume.label}: its segment checksums could not be written; reopen the volume. (${String((this.failed as Error).message ?? this.failed)})`);
  }

  // ---- idle scheduler ----

  private startIdle(ms: number): void {
    this.idle = { ms, timer: null, last: Date.now(), abort: null, running: null };
    this.armIdle();
  }

  private armIdle(): void {
    const idle = this.idle;
    if (!idle || this.closed) return;
    idle.timer = setTimeout(() => {
      idle.timer = null;
      if (this.closed) return;
      const quiet = Date.now() - idle.last;
      // nothing to do: the next write arms the timer again
      if (!idle.running && this.validCount === this.count) return;
      if (quiet < idle.ms || idle.running) return this.armIdle();
      idle.abort = new AbortController();
      idle.running = this.refresh({ signal: idle.abort.signal })
        .catch((e: unknown) => {
          this.backgroundError = e;
        })
        .finally(() => {
          idle.running = null;
          idle.abort = null;
          this.armIdle();
        });
    }, idle.ms);
    (idle.timer as { unref?: () => void }).unref?.();
  }

  private async stopIdle(): Promise<void> {
    const idle = this.idle;
    if (!idle) return;
    this.idle = null;
    if (idle.timer) clearTimeout(idle.timer);
    idle.abort?.abort();
    await idle.running;
  }
}

/** What the live view is now: uuid, layer chain, the active layer's content ID. */
export function bindingOf(volume: Volume): SumsBinding {
  const info = volume.info();
  return { uuid: info.uuid, chain: [...info.chain], contentId: info.active.contentId };
}

function sameBinding(a: SumsBinding, b: SumsBinding): boolean {
  return a.uuid === b.uuid && a.contentId === b.contentId && a.chain.length === b.chain.length && a.chain.every((c, i) => c === b.chain[i]);
}
