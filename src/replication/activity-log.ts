import { StrataError } from '../errors.js';
import { FORMATS, MAGIC_ACTIVITY_LOG, newerVersion, readsVersion } from '../format/magic.js';
import { RECORD_HEADER, RECORD_OVERHEAD, checksumOk, corrupt, decodeHead, encodeRecord } from '../format/record.js';
import { checkName, type Store, type StoreNamespace } from '../store/store.js';
import { loadKernels } from '../wasm/index.js';
import { blocksOf, type Geometry } from './bitmap-pages.js';

/**
 * The activity log of a replication session (DRBD's): the extents (default 4 MiB) that may hold
 * writes the secondary has not confirmed durably. Before a write is sent anywhere, `enter` makes
 * sure every extent it touches is durably recorded hot; after a crash of the primary, only the
 * extents in the log (`recovered`) need a resync, not the whole volume.
 *
 * On the store: two slot files `<name>.0` and `<name>.1` (format `activityLog` v1, magic "SDAL"),
 * each holding at offset 0 one checksummed record (src/format/record.ts) of kind 1 whose sequence
 * number is its generation; generation g lives in `<name>.<g % 2>`. Payload (LE): blockSize u32,
 * size u64, extentBytes u32, count u32, reserved u32 (0), then `count` extent indices u32,
 * ascending. The newest valid record is the log. A commit writes the whole set (at most
 * maxExtents, about 1 KiB at the default 257) into the slot not holding the newest and flushes:
 * a torn commit leaves the previous set, which holds every extent whose `enter` had resolved.
 *
 * Extents enter when a write needs them; all `enter`s that find an extent missing while a commit
 * is under way are written together by the next one (group commit). An extent leaves the log
 * only lazily, when its writes are released and its slot is needed (least recently used first),
 * or at `close()`. When every slot holds an extent still in use, `enter` waits for a release.
 *
 * A new log writes an empty record (generation 0) before `open` resolves; a log whose files hold
 * bytes but no whole record is `corrupt`, never taken for a new one.
 *
 * Protocol for the caller: after `open`, mark `recovered` out of sync and persist the
 * out-of-sync bitmap before the first `enter`, because recovered extents leave the log as soon as
 * their slots are needed. A damaged log is `corrupt`; then treat the whole volume as out of sync.
 * A damaged newest record cannot be told from a torn commit: the log opens as of the commit
 * before, as any log of this kind does.
 */

const KIND_AL = 1;
const AL_HEAD = 24;
/** The most extents a log may hold (bounds every allocation made from a record). */
export const MAX_AL_EXTENTS = 65536;
export const DEFAULT_EXTENT_BYTES = 4 * 2 ** 20;
export const DEFAULT_MAX_EXTENTS = 257;

export const ACTIVITY_LOG_ADVICE =
  'It cannot say which regions held writes in flight: delete it (ActivityLog.remove) and treat the whole volume as out of sync (a full resync).';

export interface ActivityLogOptions {
  /** bytes per extent: a power of two, at least the block size; default 4 MiB */
  extentBytes?: number;
  /** extents the log holds at most; default 257 */
  maxExtents?: number;
}

interface Entry {
  readonly extent: number;
  /** in a record that was flushed */
  durable: boolean;
  /** the commit whose record first holds it (0: none started yet) */
  written: number;
  /** admitted enters waiting on it */
  pins: number;
  /** the newest token of a write in it */
  last: number;
}

interface Waiter {
  readonly extents: number[];
  /** the commit it waits for (Infinity: the next one to start) */
  need: number;
  resolve(token: number): void;
  reject(e: unknown): void;
}

interface Slot {
  generation: number;
  blockSize: number;
  size: number;
  extentBytes: number;
  extents: number[];
}

export class ActivityLog {
  readonly #ns: StoreNamespace;
  readonly #name: string;
  readonly #names: readonly [string, string];
  readonly #size: number;
  readonly #blockSize: number;
  readonly #blocks: number;
  readonly #extentBytes: number;
  readonly #blocksPerExtent: number;
  readonly #maxExtents: number;
  #stores: [Store | null, Store | null] = [null, null];
  #entries = new Map<number, Entry>();
  /** enters not yet admitted (no slot free) */
  #waiting: Waiter[] = [];
  /** admitted enters waiting for a commit */
  #admitted: Waiter[] = [];
  #token = 0;
  #released = 0;
  #generation = 0;
  /** a record of #generation exists (false only before a new log's first record) */
  #written = false;
  /** commits started, and done (flushed) */
  #commits = 0;
  #done = 0;
  #committing = false;
  #idle: Promise<void> = Promise.resolve();
  #failed: unknown = null;
  #closed = false;
  readonly recovered: readonly number[];

  private constructor(ns: StoreNamespace, name: string, geometry: Geometry, blocks: number, extentBytes: number, maxExtents: number, recovered: number[]) {
    this.#ns = ns;
    this.#name = name;
    this.#names = [`${name}.0`, `${name}.1`];
    this.#size = geometry.size;
    this.#blockSize = geometry.blockSize;
    this.#blocks = blocks;
    this.#extentBytes = extentBytes;
    this.#blocksPerExtent = extentBytes / geometry.blockSize;
    this.#maxExtents = maxExtents;
    this.recovered = recovered;
  }

  static async open(ns: StoreNamespace, name: string, geometry: Geometry, options: ActivityLogOptions = {}): Promise<ActivityLog> {
    const what = `Activity log ${name}`;
    const blocks = blocksOf(geometry, what);
    const extentBytes = options.extentBytes ?? Math.max(DEFAULT_EXTENT_BYTES, geometry.blockSize);
    const maxExtents = options.maxExtents ?? DEFAULT_MAX_EXTENTS;
    if (!Number.isSafeInteger(extentBytes) || extentBytes < geometry.blockSize || (extentBytes & (extentBytes - 1)) !== 0 || extentBytes > 2 ** 30) {
      throw new StrataError('invalid-argument', `${what}: extentBytes ${String(extentBytes)} must be a power of two from the block size (${geometry.blockSize}) to 1 GiB.`);
    }
    if (!Number.isSafeInteger(maxExtents) || maxExtents < 1 || maxExtents > MAX_AL_EXTENTS) {
      throw new StrataError('invalid-argument', `${what}: maxExtents ${String(maxExtents)} must be from 1 to ${MAX_AL_EXTENTS}.`);
    }
    if (Math.ceil(geometry.size / extentBytes) > 2 ** 32) throw new StrataError('unsupported', `${what}: the volume has more than 2^32 extents of ${extentBytes} bytes; use larger extents.`);
    checkName(`${name}.0`);
    await loadKernels();
    const stores: [Store | null, Store | null] = [null, null];
    try {
      const slots: (Slot | null)[] = [];
      let written = false;
      for (const i of [0, 1] as const) {
        const n = `${name}.${i}`;
        const exists = await ns.exists(n);
        if (!exists && ns.readOnly) {
          slots.push(null);
          continue;
        }
        const s = await ns.open(n, { create: !ns.readOnly });
        stores[i] = s;
        if (!exists) await ns.sync();
        if (s.size > 0) written = true;
        slots.push(await readSlot(s, n, geometry, blocks));
      }
      let best: Slot | null = null;
      for (const s of slots) if (s && (!best || s.generation > best.generation)) best = s;
      if (!best && written) throw corrupt(what, 'neither slot holds a whole record', ACTIVITY_LOG_ADVICE);
      const recovered: number[] = [];
      if (best) {
        const bpe = best.extentBytes / geometry.blockSize;
        for (const e of best.extents) {
          const first = e * bpe, count = Math.min(bpe, blocks - first);
          const n = recovered.length;
          if (n > 0 && recovered[n - 2]! + recovered[n - 1]! === first) recovered[n - 1]! += count;
          else recovered.push(first, count);
        }
      }
      const log = new ActivityLog(ns, name, geometry, blocks, extentBytes, maxExtents, recovered);
      log.#stores = stores;
      if (!best && !ns.readOnly) {
        // A new log: an empty record in slot 0 (generation 0) before open resolves, so that from
        // now on the log always has bytes; only a creation that never finished looks new.
        await log.#write([]);
      }
      if (best) {
        log.#written = true;
        log.#generation = best.generation;
        // Recovered extents stay in the log (released) until their slots are needed.
        if (best.extentBytes === extentBytes) for (const e of best.extents) log.#entries.set(e, { extent: e, durable: true, written: 0, pins: 0, last: 0 });
      }
      return log;
    } catch (e) {
      for (const s of stores) if (s) await s.close();
      throw e;
    }
  }

  /** Deletes the files of log `name` (no error when there are none). */
  static async remove(ns: StoreNamespace, name: string): Promise<void> {
    for (const n of [`${name}.0`, `${name}.1`]) if (await ns.exists(n)) await ns.delete(n);
    await ns.sync();
  }

  get extentBytes(): number {
    return this.#extentBytes;
  }

  /** Extents in the log (in use, or released and not yet evicted). */
  get hotExtents(): number {
    return this.#entries.size;
  }

  /**
   * Call before a write of these block runs is sent anywhere: resolves, with a token for
   * {@link releaseUpTo}, once every extent they touch is durably in the log. Tokens rise in the
   * order enters resolve.
   */
  enter(runs: readonly number[]): Promise<number> {
    if (this.#closed || this.#failed !== null) return Promise.reject(this.#unusable());
    const entries = this.#entries;
    const bpe = this.#blocksPerExtent;
    const tentative = this.#token + 1;
    let hot = true;
    const n = runs.length;
    if ((n & 1) !== 0) return Promise.reject(new StrataError('invalid-argument', `enter: runs are flat [firstBlock, count] pairs; got ${n} numbers.`));
    for (let i = 0; i < n; i += 2) {
      const first = runs[i]!, count = runs[i + 1]!;
      if (!(first >= 0 && count >= 0 && first + count <= this.#blocks && Number.isSafeInteger(first) && Number.isSafeInteger(count))) {
        return Promise.reject(new StrataError('out-of-range', `enter: the run of ${String(count)} blocks at block ${String(first)} is not within the volume's ${this.#blocks} blocks.`));
      }
      if (count === 0) continue;
      const last = Math.floor((first + count - 1) / bpe);
      for (let e = Math.floor(first / bpe); e <= last; e++) {
        const ent = entries.get(e);
        if (ent === undefined || !ent.durable) {
          hot = false;
          break;
        }
        // Tentatively in use by this enter: keeps it from eviction; harmless if we go the slow way.
        ent.last = tentative;
      }
      if (!hot) break;
    }
    if (hot) return Promise.resolve(++this.#token);
    return this.#enterSlow(runs);
  }

  #enterSlow(runs: readonly number[]): Promise<number> {
    const bpe = this.#blocksPerExtent;
    const set = new Set<number>();
    for (let i = 0; i < runs.length; i += 2) {
      const first = runs[i]!, count = runs[i + 1]!;
      if (count === 0) continue;
      const last = Math.floor((first + count - 1) / bpe);
      for (let e = Math.floor(first / bpe); e <= last; e++) set.add(e);
    }
    if (set.size > this.#maxExtents) {
      return Promise.reject(new StrataError('invalid-argument', `enter: the write touches ${set.size} extents of ${this.#extentBytes} bytes, more than the log holds (${this.#maxExtents}); split it.`));
    }
    return new Promise<number>((resolve, reject) => {
      this.#waiting.push({ extents: [...set], need: Infinity, resolve, reject });
      this.#pump();
    });
  }

  /** The writes entered with tokens <= upTo are durable on both sides: their extents may leave the log. */
  releaseUpTo(token: number): void {
    if (token > this.#released) this.#released = Math.min(token, this.#token);
    if (this.#waiting.length > 0) this.#pump();
  }

  #evictable(ent: Entry): boolean {
    return ent.durable && ent.pins === 0 && ent.last <= this.#released;
  }

  /** Admit waiting enters in order while slots can be found, then start a commit if one is needed. */
  #pump(): void {
    while (this.#waiting.length > 0) {
      const w = this.#waiting[0]!;
      let fresh = 0;
      for (const e of w.extents) if (!this.#entries.has(e)) fresh++;
      const over = this.#entries.size + fresh - this.#maxExtents;
      if (over > 0) {
        const victims: Entry[] = [];
        for (const ent of this.#entries.values()) if (this.#evictable(ent) && !w.extents.includes(ent.extent)) victims.push(ent);
        if (victims.length < over) break; // back-pressure: wait for a release
        victims.sort((a, b) => a.last - b.last);
        for (let i = 0; i < over; i++) this.#entries.delete(victims[i]!.extent);
      }
      this.#waiting.shift();
      let need = 0;
      for (const e of w.extents) {
        let ent = this.#entries.get(e);
        if (ent === undefined) {
          ent = { extent: e, durable: false, written: 0, pins: 0, last: 0 };
          this.#entries.set(e, ent);
        }
        ent.pins++;
        if (!ent.durable) need = Math.max(need, ent.written === 0 ? Infinity : ent.written);
      }
      w.need = need;
      this.#admitted.push(w);
    }
    if (!this.#committing && this.#admitted.length > 0) {
      // Enters whose extents all became durable while they waited resolve now.
      this.#settle(this.#done);
      if (this.#admitted.length > 0) this.#idle = this.#commitLoop();
    }
  }

  async #commitLoop(): Promise<void> {
    this.#committing = true;
    try {
      for (;;) {
        this.#settle(this.#done);
        if (this.#failed !== null || !this.#admitted.some((w) => w.need === Infinity)) return;
        const c = ++this.#commits;
        for (const w of this.#admitted) if (w.need === Infinity) w.need = c;
        for (const ent of this.#entries.values()) if (ent.written === 0) ent.written = c;
        const included = [...this.#entries.values()];
        try {
          await this.#write(included.map((e) => e.extent));
        } catch (e) {
          this.#failed = e;
          this.#rejectAll(e);
          return;
        }
        for (const ent of included) ent.durable = true;
        this.#done = c;
      }
    } finally {
      this.#committing = false;
    }
  }

  /** Resolve the admitted enters whose commit is done, in admission order. */
  #settle(done: number): void {
    if (this.#admitted.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.#admitted) {
      if (w.need > done) {
        still.push(w);
        continue;
      }
      const t = ++this.#token;
      for (const e of w.extents) {
        const ent = this.#entries.get(e)!;
        ent.pins--;
        if (ent.last < t) ent.last = t;
      }
      w.resolve(t);
    }
    this.#admitted = still;
  }

  #rejectAll(e: unknown): void {
    for (const w of [...this.#admitted, ...this.#waiting]) w.reject(e);
    this.#admitted = [];
    this.#waiting = [];
  }

  #unusable(): StrataError {
    if (this.#closed) return new StrataError('closed', `Activity log ${this.#name} is closed; open it again to use it.`);
    const e = this.#failed;
    return new StrataError('io', `Activity log ${this.#name} failed to record an extent (${e instanceof Error ? e.message : String(e)}); writes cannot be tracked: reopen it and resync its recovered extents.`);
  }

  /** Write the set of extents as the next generation and flush it. */
  async #write(extents: number[]): Promise<void> {
    extents.sort((a, b) => a - b);
    const payload = new Uint8Array(AL_HEAD + 4 * extents.length);
    const v = new DataView(payload.buffer);
    v.setUint32(0, this.#blockSize, true);
    v.setUint32(4, this.#size % 2 ** 32, true);
    v.setUint32(8, Math.floor(this.#size / 2 ** 32), true);
    v.setUint32(12, this.#extentBytes, true);
    v.setUint32(16, extents.length, true);
    for (let i = 0; i < extents.length; i++) v.setUint32(AL_HEAD + 4 * i, extents[i]!, true);
    const generation = this.#written ? this.#generation + 1 : this.#generation;
    this.#written = true;
    const rec = encodeRecord({ magic: MAGIC_ACTIVITY_LOG, kind: KIND_AL, version: FORMATS.activityLog.writes, seq: generation, length: payload.length }, payload);
    // Whatever happens to this write, the next one must be newer than anything it left.
    this.#generation = generation;
    const store = this.#stores[generation % 2]!;
    await store.write(0, rec);
    await store.flush();
  }

  /**
   * Waits for commits under way, refuses enters still waiting for a slot (`closed`), writes the
   * log with only the extents still in use (none when every write was released: the next open
   * then recovers nothing) and closes.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      const err = this.#unusable();
      for (const w of this.#waiting) w.reject(err);
      this.#waiting = [];
      while (this.#committing) await this.#idle;
      if (this.#failed === null && !this.#ns.readOnly) {
        const keep: number[] = [];
        for (const ent of this.#entries.values()) if (ent.pins > 0 || ent.last > this.#released || (!ent.durable && ent.written > 0)) keep.push(ent.extent);
        await this.#write(keep);
      }
    } finally {
      for (const i of [0, 1] as const) {
        const s = this.#stores[i];
        this.#stores[i] = null;
        if (s) await s.close();
      }
    }
  }

  /** Closes without writing and deletes the log's files. */
  async delete(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      const err = this.#unusable();
      for (const w of this.#waiting) w.reject(err);
      this.#waiting = [];
      while (this.#committing) await this.#idle;
      for (const i of [0, 1] as const) {
        const s = this.#stores[i];
        this.#stores[i] = null;
        if (s) await s.close();
      }
    }
    await ActivityLog.remove(this.#ns, this.#name);
  }
}

/** Reads one slot: its record, or null when it holds none that is whole (torn, or never written). Damage inside a whole record is `corrupt`. */
async function readSlot(store: Store, name: string, geometry: Geometry, blocks: number): Promise<Slot | null> {
  if (store.size < RECORD_OVERHEAD + AL_HEAD) return null;
  const head = decodeHead(await store.read(0, RECORD_HEADER), MAGIC_ACTIVITY_LOG, AL_HEAD + 4 * MAX_AL_EXTENTS);
  if (!head || head.kind !== KIND_AL || head.length < AL_HEAD || RECORD_OVERHEAD + head.length > store.size) return null;
  const rec = await store.read(0, RECORD_OVERHEAD + head.length);
  if (!checksumOk(rec, head.length)) return null;
  if (!readsVersion('activityLog', head.version)) throw newerVersion('activityLog', `Activity log ${name}`, head.version);
  const v = new DataView(rec.buffer, rec.byteOffset + RECORD_HEADER, head.length);
  const bad = (detail: string): StrataError => corrupt(`Activity log ${name}`, detail, ACTIVITY_LOG_ADVICE);
  const blockSize = v.getUint32(0, true);
  const size = v.getUint32(8, true) * 2 ** 32 + v.getUint32(4, true);
  const extentBytes = v.getUint32(12, true);
  const count = v.getUint32(16, true);
  if (v.getUint32(20, true) !== 0) throw bad('reserved bits are set');
  if (blockSize !== geometry.blockSize || size !== geometry.size) {
    throw bad(`it was written for a volume of ${size} bytes in ${blockSize}-byte blocks, not ${geometry.size} bytes in ${geometry.blockSize}-byte blocks`);
  }
  if (extentBytes < blockSize || (extentBytes & (extentBytes - 1)) !== 0 || extentBytes > 2 ** 30) throw bad(`its extents of ${extentBytes} bytes are not a power of two from the block size to 1 GiB`);
  if (count > MAX_AL_EXTENTS || head.length !== AL_HEAD + 4 * count) throw bad(`it counts ${count} extents in ${head.length - AL_HEAD} bytes`);
  const extentCount = Math.ceil(blocks / (extentBytes / blockSize));
  const extents: number[] = [];
  for (let i = 0; i < count; i++) {
    const e = v.getUint32(AL_HEAD + 4 * i, true);
    if (e >= extentCount || (i > 0 && e <= extents[i - 1]!)) throw bad(`extent ${e} is out of order or past the volume's ${extentCount} extents`);
    extents.push(e);
  }
  return { generation: head.seq, blockSize, size, extentBytes, extents };
}
