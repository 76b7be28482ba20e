/**
 * The passive reader: reads a shadow copy from another worker, thread or process. It never
 * writes and never takes the writer's lock; it opens the volume and the diff areas read-only
 * itself and learns from the writer only which blocks are preserved where:
 * - shared memory (cross-origin isolated pages, Node worker_threads): the bits are the
 *   writer's SharedArrayBuffer bitmaps, read with Atomics; the re-check needs no message;
 * - messages (anything else, and separate processes): a local copy of the bits, kept by `pub`
 *   messages, and a `sync` round trip before each re-check (see protocol.ts).
 * Locations (where a block sits in its diff area) come from the area's durable log, read from
 * the store up to the published end, and then from `pub` messages.
 */
import { StrataError } from '../errors.js';
import type { Store, StoreNamespace } from '../store/store.js';
import { loadKernels, resolveRuns, SparseBitmap } from '../wasm/index.js';
import { BlockIndex } from './block-index.js';
import type { AreaState } from './catalog.js';
import { AREA_HEADER_BYTES, batchHeadBytes, decodeAreaHeader, replayArea, verifyRecordData, type AreaHeader } from './diff-area.js';
import { toEndpoint, type ChainEntry, type ReaderMessage, type ShadowEndpoint, type WriterMessage } from './protocol.js';
import { lostError, ShadowCopyReader, type ChainView } from './read-path.js';
import { CTL_FENCE, CTL_GEN, sharedMemoryAvailable, sharedRuns } from './shared-bits.js';
import { VerifiedRecords } from './verified-records.js';

export interface ShadowReaderOptions {
  /** name of the shadow copy to read */
  copy: string;
  /** the volume, opened read-only by the caller */
  volume: Store;
  /** the shadow namespace (where the diff areas are), opened read-only */
  areas: StoreNamespace;
  /** 'shared' needs SharedArrayBuffer; 'message' forces the fallback; default 'auto'. */
  mode?: 'auto' | 'shared' | 'message';
  /** Give up on the writer after this long without an answer (default 30 s). */
  timeoutMs?: number;
  /** Tests only: skip the re-check, to show that the stress test catches torn reads. */
  recheck?: boolean;
}

interface RemoteArea {
  slot: number;
  id: string;
  name: string;
  storeName: string;
  state: AreaState;
  store: Store | null;
  header: AreaHeader | null;
  words: Int32Array | null;
  bits: SparseBitmap | null;
  index: BlockIndex;
  /** the batch records, verified on first read */
  records: VerifiedRecords;
  loading: Promise<void> | null;
  /** a reopen in progress (the store grew past what our handle knows) */
  reopening: Promise<void> | null;
  /** handles replaced by a reopen; closed with the area (reads may still be using them) */
  retired: Store[];
}

export class ShadowReader {
  /** Connect to the writer over `target` and open copy `options.copy` for reading. */
  static async connect(target: Parameters<typeof toEndpoint>[0], options: ShadowReaderOptions): Promise<ShadowCopyReader> {
    await loadKernels();
    const mode = options.mode ?? 'auto';
    if (mode === 'shared' && !sharedMemoryAvailable()) throw new StrataError('unsupported', 'Shared memory is not available here (the page is not cross-origin isolated); use mode "message".');
    const view = new RemoteView(toEndpoint(target), options, mode !== 'message' && sharedMemoryAvailable());
    await view.open();
    return new ShadowCopyReader(view, options.copy, () => view.close(), options.recheck ?? true);
  }
}

class RemoteView implements ChainView {
  readonly name: string;
  blockSize = 0;
  volumeSize = 0;
  readonly volume: Store;
  private chain: RemoteArea[] = [];
  private readonly bySlot = new Map<number, RemoteArea>();
  private control: Int32Array | null = null;
  private knownGen = 0;
  private shared: boolean;
  private gone: StrataError | null = null;
  private rid = 1;
  private readonly waiting = new Map<number, { resolve: (m: WriterMessage) => void; reject: (e: unknown) => void; timer: ReturnType<typeof setTimeout> }>();
  private readonly stop: () => void;
  private readonly timeout: number;

  constructor(
    private readonly ep: ShadowEndpoint,
    private readonly options: ShadowReaderOptions,
    shared: boolean,
  ) {
    this.volume = options.volume;
    this.name = options.copy;
    this.shared = shared;
    this.timeout = options.timeoutMs ?? 30_000;
    this.stop = ep.listen((m) => this.onMessage(m as WriterMessage));
  }

  async open(): Promise<void> {
    const w = await this.request({ t: 'hello', rid: 0, copy: this.options.copy, shared: this.shared });
    if (w.t === 'refused') {
      this.stop();
      throw new StrataError(w.code, w.message);
    }
    if (w.t !== 'welcome') throw new StrataError('io', 'The shadow writer answered with something unexpected.');
    // (the welcome was applied in onMessage, before any message after it)
    if (this.volume.size < this.volumeSize) throw new StrataError('invalid-argument', `The volume opened by the reader is ${this.volume.size} bytes, the writer's is ${this.volumeSize}: open the same volume.`);
    await this.ready();
  }

  private request(m: ReaderMessage & { rid: number }): Promise<WriterMessage> {
    if (this.gone) return Promise.reject(this.gone);
    const rid = this.rid++;
    return new Promise<WriterMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        reject(new StrataError('timeout', `The shadow writer did not answer within ${this.timeout} ms; is it still running?`));
      }, this.timeout);
      this.waiting.set(rid, { resolve, reject, timer });
      this.ep.post({ ...m, rid });
    });
  }

  private onMessage(m: WriterMessage): void {
    if (!m || typeof m !== 'object') return;
    switch (m.t) {
      case 'pub': {
        const a = this.bySlot.get(m.slot);
        if (!a) return;
        // One message is one batch record: its runs sit one after another from the first offset.
        const r = m.runs;
        let blocks = 0;
        for (let i = 0; i < r.length; i += 3) {
          a.index.setRun(r[i]!, r[i + 1]!, r[i + 2]!, this.blockSize);
          a.bits?.set(r[i]!, r[i + 1]!);
          blocks += r[i + 1]!;
        }
        if (r.length >= 3) a.records.add(r[2]! - batchHeadBytes(r.length / 3), r[2]!, r[2]! + blocks * this.blockSize);
        return;
      }
      case 'chain':
        this.applyChain(m.chain, m.gen);
        return;
      case 'closed':
        this.fail(new StrataError('closed', 'The shadow writer closed the volume; reopen the shadow copy once it runs again.'));
        return;
      case 'welcome':
        // Apply it now, not when the awaiting code resumes: a channel may deliver the next
        // messages (pubs for these areas) in the same turn, before that continuation runs.
        this.blockSize = m.blockSize;
        this.volumeSize = m.volumeSize;
        this.shared = this.shared && m.control !== null;
        this.control = m.control ? new Int32Array(m.control) : null;
        this.applyChain(m.chain, m.gen);
        this.answer(m);
        return;
      case 'refused':
      case 'synced':
        this.answer(m);
        return;
    }
  }

  private answer(m: WriterMessage & { rid: number }): void {
    const w = this.waiting.get(m.rid);
    if (!w) return;
    this.waiting.delete(m.rid);
    clearTimeout(w.timer);
    w.resolve(m);
  }

  private fail(e: StrataError): void {
    this.gone ??= e;
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.waiting.clear();
  }

  private applyChain(entries: ChainEntry[], gen: number): void {
    this.knownGen = Math.max(this.knownGen, gen);
    const own = this.chain[0]?.id;
    const i = entries.findIndex((e) => (own ? e.id === own : e.name === this.options.copy && e.state !== 'deleted'));
    if (i < 0) {
      if (this.chain[0]) this.chain[0].state = 'deleted';
      return;
    }
    const next: RemoteArea[] = [];
    for (const e of entries.slice(i)) {
      let a = this.bySlot.get(e.slot);
      if (!a) {
        a = {
          slot: e.slot, id: e.id, name: e.name, storeName: e.store, state: e.state, store: null, header: null,
          words: this.shared && e.bits ? new Int32Array(e.bits) : null,
          bits: this.shared ? null : new SparseBitmap(),
          index: new BlockIndex(), records: new VerifiedRecords(), loading: null, reopening: null, retired: [],
        };
        this.bySlot.set(e.slot, a);
        a.loading = this.load(a, e.end);
      }
      a.state = e.state;
      next.push(a);
    }
    for (const a of this.chain) if (!next.includes(a)) this.drop(a);
    this.chain = next;
  }

  /** Read the area's durable log up to the published end; later records come as `pub`. */
  private async load(a: RemoteArea, end: number): Promise<void> {
    try {
      a.store = await this.options.areas.open(a.storeName, { readOnly: true });
      const h = decodeAreaHeader(await a.store.read(0, Math.min(AREA_HEADER_BYTES, a.store.size)), a.storeName);
      if (h.id !== a.id) throw new StrataError('corrupt', `Diff area ${a.storeName} is not the one the writer named.`);
      a.header = h;
      await replayArea(a.store, h, (s, n, off) => {
        a.index.setRun(s, n, off, this.blockSize);
        a.bits?.set(s, n);
      }, end, false, (at, dataAt, recEnd) => a.records.add(at, dataAt, recEnd));
      a.loading = null;
    } catch (e) {
      this.fail(e instanceof StrataError ? e : new StrataError('io', `Could not read diff area ${a.storeName}: ${String(e)}`, { cause: e }));
      throw e;
    }
  }

  private drop(a: RemoteArea): void {
    this.bySlot.delete(a.slot);
    a.bits?.dispose();
    for (const s of [a.store, ...a.retired]) void s?.close().catch(() => {});
    a.retired = [];
  }

  ready(): Promise<void> | undefined {
    let p: Promise<void>[] | null = null;
    for (const a of this.chain) if (a.loading) (p ??= []).push(a.loading);
    return p ? Promise.all(p).then(() => {}) : undefined;
  }

  runs(start: number, count: number): Uint32Array {
    if (this.shared) return sharedRuns(this.chain.map((a) => a.words!), start, count);
    return resolveRuns(this.chain.map((a) => a.bits!), start, count);
  }

  locate(k: number, b: number): number {
    return this.chain[k]?.index.get(b) ?? 0;
  }

  async readArea(k: number, offset: number, target: Uint8Array): Promise<void> {
    const store = await this.storeUpTo(this.chain[k]!, offset + target.length);
    await store.readInto(offset, target);
  }

  verify(k: number, offset: number, length: number): Promise<void> | undefined {
    const a = this.chain[k]!;
    return a.records.verify(offset, length, async (at, dataAt, end) => verifyRecordData(await this.storeUpTo(a, end), a.header!, at, dataAt, end));
  }

  /** The area's store, reopened when the writer grew it past what our handle knows (a Node file store caches its size). */
  private async storeUpTo(a: RemoteArea, end: number): Promise<Store> {
    if (a.loading) await a.loading;
    if (end > a.store!.size) {
      a.reopening ??= this.options.areas.open(a.storeName, { readOnly: true }).then((s) => {
        a.retired.push(a.store!);
        a.store = s;
        a.reopening = null;
      });
      await a.reopening;
    }
    return a.store!;
  }

  async catchUp(): Promise<void> {
    await this.sync();
    const w = this.ready();
    if (w) await w;
  }

  settle(): Promise<void> | undefined {
    if (this.shared) {
      // A full fence, then the chain generation: a new area or a state change means messages to wait for.
      Atomics.add(this.control!, CTL_FENCE, 0);
      if (Atomics.load(this.control!, CTL_GEN) === this.knownGen) return undefined;
    }
    return this.sync().then(() => this.ready());
  }

  /** One round trip: when it returns, every message the writer posted before answering has arrived. */
  private sync(): Promise<void> {
    return this.request({ t: 'sync', rid: 0 }).then(() => {});
  }

  check(): void {
    if (this.gone) throw this.gone;
    const own = this.chain[0];
    if (!own || own.state === 'deleted') throw new StrataError('not-found', `Shadow copy ${this.options.copy} was deleted.`);
    if (own.state === 'lost') throw lostError(own.name);
  }

  async close(): Promise<void> {
    if (!this.gone) this.ep.post({ t: 'bye' } satisfies ReaderMessage);
    this.fail(new StrataError('closed', 'This shadow reader is closed.'));
    this.stop();
    for (const a of this.chain) this.drop(a);
    this.chain = [];
    await this.volume.close();
  }
}
