/**
 * The reader-serving side of the shadow writer: passive readers in other workers, threads or
 * processes (the `hello`/`sync`/`bye` protocol, chain announcements, publications, the shared
 * control block), and the in-process view a copy opened by the writer itself reads through.
 * The writer (shadow-volume.ts) owns the areas and decides what happens; this side only tells.
 */
import { StrataError } from '../errors.js';
import type { Store } from '../store/store.js';
import { resolveRuns } from '../wasm/index.js';
import type { Area } from './area.js';
import { areaStoreName } from './catalog.js';
import { verifyRecordData } from './diff-area.js';
import type { ChainEntry, ReaderMessage, ShadowEndpoint, WriterMessage } from './protocol.js';
import { lostError, type ChainView } from './read-path.js';
import { createControl, CTL_GEN } from './shared-bits.js';

interface Reader {
  ep: ShadowEndpoint;
  shared: boolean;
  stop: () => void;
}

/** What the hub asks of the writer. */
export interface ServedWriter {
  readonly blockSize: number;
  readonly size: number;
  readonly isClosed: boolean;
  /** the areas, oldest first */
  readonly chain: readonly Area[];
}

/** The passive readers of one writer, and the control block shared with them. */
export class ReaderHub {
  private readonly readers = new Set<Reader>();
  /** shared control block (generation counter), null without shared memory */
  readonly control: SharedArrayBuffer | null;
  private gen = 0;

  constructor(shared: boolean) {
    this.control = shared ? createControl() : null;
  }

  /** Answer one reader on `ep`. Returns a function that stops serving it. */
  serve(ep: ShadowEndpoint, w: ServedWriter): () => void {
    let reader: Reader | null = null;
    const stop = ep.listen((raw) => {
      const m = raw as ReaderMessage;
      if (!m || typeof m !== 'object') return;
      if (m.t === 'sync') {
        ep.post({ t: 'synced', rid: m.rid } satisfies WriterMessage);
      } else if (m.t === 'hello') {
        const a = w.chain.find((x) => x.rec.name === m.copy && x.rec.state === 'live');
        if (w.isClosed || !a) {
          ep.post({ t: 'refused', rid: m.rid, code: w.isClosed ? 'closed' : 'not-found', message: w.isClosed ? 'The shadow writer is closed.' : `No shadow copy named ${m.copy}.` } satisfies WriterMessage);
          return;
        }
        const shared = !!m.shared && this.control !== null;
        if (!reader) {
          reader = { ep, shared, stop: () => stop() };
          this.readers.add(reader);
        }
        reader.shared ||= shared;
        ep.post({ t: 'welcome', rid: m.rid, blockSize: w.blockSize, volumeSize: w.size, chain: entries(w.chain, shared), control: shared ? this.control : null, gen: this.gen } satisfies WriterMessage);
      } else if (m.t === 'bye') {
        if (reader) this.readers.delete(reader);
        reader = null;
      }
    });
    return () => {
      if (reader) this.readers.delete(reader);
      stop();
    };
  }

  /** Post a publication to every reader (before the volume changes). */
  post(msg: WriterMessage): void {
    for (const r of this.readers) r.ep.post(msg);
  }

  /** The chain changed (a copy created, deleted, dropped): tell every reader, bump the generation. */
  broadcastChain(areas: readonly Area[]): void {
    this.gen++;
    for (const r of this.readers) r.ep.post({ t: 'chain', chain: entries(areas, r.shared), gen: this.gen } satisfies WriterMessage);
    if (this.control) Atomics.store(new Int32Array(this.control), CTL_GEN, this.gen);
  }

  /** The writer closes: tell every reader and forget them. */
  closeAll(): void {
    for (const r of this.readers) r.ep.post({ t: 'closed' } satisfies WriterMessage);
    if (this.control) Atomics.store(new Int32Array(this.control), CTL_GEN, ++this.gen);
    this.readers.clear();
  }
}

function entries(areas: readonly Area[], shared: boolean): ChainEntry[] {
  return areas.map((a) => ({ slot: a.slot, id: a.rec.id, name: a.rec.name, store: areaStoreName(a.rec.id), state: a.rec.state, end: a.end, bits: shared ? a.shared : null }));
}

/** What the in-process view asks of the writer. */
export interface LocalWriter {
  readonly blockSize: number;
  readonly size: number;
  readonly volume: Store;
  readonly isClosed: boolean;
  /** the areas a copy reads, its own first; null when the area is gone */
  chainFrom(a: Area): Area[] | null;
}

/** The in-process view: the writer's own bitmaps and stores. */
export class LocalView implements ChainView {
  constructor(
    private readonly sv: LocalWriter,
    private readonly own: Area,
  ) {}

  get name(): string {
    return this.own.rec.name;
  }

  get blockSize(): number {
    return this.sv.blockSize;
  }

  get volumeSize(): number {
    return this.sv.size;
  }

  get volume(): Store {
    return this.sv.volume;
  }

  private chain(): Area[] {
    const c = this.sv.chainFrom(this.own);
    if (!c) throw this.gone();
    return c;
  }

  private gone(): StrataError {
    return new StrataError('not-found', `Shadow copy ${this.own.rec.name} was deleted.`);
  }

  runs(start: number, count: number): Uint32Array {
    return resolveRuns(this.chain().map((a) => a.bits), start, count);
  }

  locate(k: number, b: number): number {
    return this.chain()[k]?.index.get(b) ?? 0;
  }

  readArea(k: number, offset: number, target: Uint8Array): Promise<void> {
    return this.chain()[k]!.store.readInto(offset, target);
  }

  verify(k: number, offset: number, length: number): Promise<void> | undefined {
    const a = this.chain()[k]!;
    return a.records.verify(offset, length, (at, dataAt, end) => verifyRecordData(a.store, a.header, at, dataAt, end));
  }

  async catchUp(): Promise<void> {}

  ready(): undefined {
    return undefined;
  }

  settle(): undefined {
    return undefined;
  }

  check(): void {
    if (this.sv.isClosed) throw new StrataError('closed', 'The shadow volume is closed.');
    if (this.own.rec.state === 'lost') throw lostError(this.own.rec.name);
    if (this.own.rec.state === 'deleted' || !this.sv.chainFrom(this.own)) throw this.gone();
  }
}
