/**
 * The primary end of a replication session: every write and flush of a volume, streamed in
 * order to a secondary over a Link (./secondary.ts applies them).
 *
 * The session is a sync write observer (src/volume/write-observer.ts) attached for its whole
 * life, connected or not:
 * - Connected, sync mode (DRBD protocol C): a write is acknowledged to its caller only when the
 *   secondary says it is durable there. Async mode (protocol A): the write goes into the stream
 *   and is acknowledged at once; only when more than `maxQueueBytes` are sent and not yet
 *   applied does a write wait (a bounded queue).
 * - Not connected (before the first connect, frozen, refused): writes are recorded in the
 *   out-of-sync bitmap and acknowledged (policy `run`) or held until the secondary has them
 *   again (policy `block`). The first write accepted apart starts a new data generation
 *   (./roles.ts), durably, before it is acknowledged, so a later pairing with a secondary that
 *   was promoted meanwhile is seen as the split brain it is.
 * - Before a write is sent, the extents it touches are durably in the activity log: after a
 *   crash of the primary, those extents are resynced (the secondary may hold writes the primary
 *   lost with its unflushed data). An extent leaves the log when its writes are durable on both
 *   sides.
 * - Any failure to copy (the link closes, a gap, the secondary's error, no acknowledgement within
 *   `ackTimeoutMs`) calls `onFailure`: the manager (./manager.ts) freezes every session of every
 *   group at once. Freezing stops the stream, marks everything the secondary has not confirmed
 *   durable as out of sync, and holds the failed writes until the freeze is durable.
 * - On connect the session resynchronises what the bitmap holds (with live writes flowing: a
 *   block written while its resync read runs is left to the live write), bracketed by
 *   `sync-begin` / `sync-end` so the secondary keeps a consistent snapshot meanwhile.
 */
import { StrataError } from '../errors.js';
import type { Link } from '../consistency/link.js';
import { isZero, scanBlocks } from '../wasm/index.js';
import type { Volume } from '../volume/volume.js';
import type { ObserverHandle, VolumeEvent, WriteEvent } from '../volume/write-observer.js';
import { parseToPrimary, REPLICATION_PROTOCOL, type Mode, type ToPrimary, type ToSecondary } from './protocol.js';
import { compareGenerations, contentBinding, FRESH_GENERATION, nextGeneration, RoleRecord, verdictError } from './roles.js';
import { MemoryOutOfSync, NoActivityLog, type ActivityLogLike, type OutOfSyncMap } from './tracking.js';

export type SessionState = 'idle' | 'connecting' | 'syncing' | 'replicating' | 'frozen' | 'refused' | 'closed';
export type FreezePolicy = 'run' | 'block';

export interface PrimaryOptions {
  /** the session's name (status, messages; the secondary reports it) */
  name: string;
  mode?: Mode;
  /** what writes do while frozen: `run` (acknowledged, recorded out of sync; default) or `block` (held until resynced) */
  policy?: FreezePolicy;
  oos?: OutOfSyncMap;
  al?: ActivityLogLike;
  /** the volume's role record (opened by `PrimarySession.open` when absent) */
  role?: RoleRecord;
  /** a secondary that has not acknowledged the oldest write this long fails the session (default 30 s) */
  ackTimeoutMs?: number;
  /** how long connect waits for the secondary's welcome (default 30 s) */
  helloTimeoutMs?: number;
  /** async: bytes sent and not yet applied before a write waits (default 64 MiB) */
  maxQueueBytes?: number;
  /** resync: bytes read per batch (default 8 MiB) and not yet durable before the resync waits (default 64 MiB) */
  resyncBatchBytes?: number;
  resyncWindowBytes?: number;
  label?: string;
}

export interface SessionStatus {
  name: string;
  mode: Mode;
  state: SessionState;
  /** writes sent and not yet durable on the secondary, and their bytes */
  lagWrites: number;
  lagBytes: number;
  /** bytes the secondary lacks for sure (out-of-sync bitmap) */
  outOfSyncBytes: number;
  /** bytes sent since the session opened */
  sentBytes: number;
  /** resync progress of the current connection (blocks) */
  resync: { done: number; total: number } | null;
  lastError: { code: string; message: string } | null;
}

export interface SessionHooks {
  /** asked before connecting; a throw refuses (a frozen manager connects only through `resume`) */
  beforeConnect?(session: PrimarySession): void;
  /** a copy failed: the manager freezes everything (default: this session freezes alone) */
  onFailure?(session: PrimarySession, error: StrataError): void;
  /** gated sessions: the secondary has received cut `cut` */
  onCutReceived?(session: PrimarySession, cut: number): void;
  /** state changes (status displays) */
  onState?(session: PrimarySession, state: SessionState): void;
  onProgress?(session: PrimarySession, done: number, total: number): void;
}

interface Entry {
  n: number;
  runs: number[];
  bytes: number;
  token: number;
  volSeq: number;
}

interface Waiter {
  n: number;
  resolve: () => void;
}

/** One connection's stream state. */
class Conn {
  n = 0;
  ended = false;
  /** acknowledged by the secondary */
  applied = 0;
  durable = 0;
  cut = 0;
  /** entries sent and not yet durable, in stream order */
  entries: Entry[] = [];
  head = 0;
  /** bytes of entries with n > applied */
  unapplied = 0;
  appliedIdx = 0;
  waiters: Waiter[] = [];
  welcome: ((m: Extract<ToPrimary, { t: 'welcome' }>) => void) | null = null;
  refused: ((e: StrataError) => void) | null = null;
  /** highest stream number the secondary says it received, and when that last moved (or the stream was caught up) */
  received = 0;
  progressAt = 0;
  /** stream number of the last cut marker */
  lastCutAt = 0;

  constructor(readonly link: Link<ToSecondary>) {}

  send(m: ToSecondary): void {
    if (this.ended) return;
    // the clock for "not receiving" starts when the secondary had everything before this message
    if ('n' in m && this.received >= m.n - 1) this.progressAt = performance.now();
    this.link.send(m);
  }
}

export class PrimarySession {
  state: SessionState = 'idle';
  readonly mode: Mode;
  readonly policy: FreezePolicy;
  readonly label: string;
  /** gated sessions (async members of a group of several) apply only released cuts */
  gated = false;
  hooks: SessionHooks = {};
  lastError: StrataError | null = null;
  sentBytes = 0;
  private conn: Conn | null = null;
  private handle: ObserverHandle | null = null;
  /** writes observed and not yet ended on the volume: volume seq -> runs */
  private live = new Map<number, number[]>();
  /** during a resync read: blocks of live writes in flight or started meanwhile */
  private touched: Set<number> | null = null;
  /** a data generation was started for the current time apart */
  private apartGen: Promise<void> | null = null;
  private inStep = false;
  /** the bitmap says what the secondary lacks (false when it was just created: before the first complete sync) */
  bitmapKnown: boolean;
  private oosChanged = false;
  private frozenReady: Promise<void> = Promise.resolve();
  /** held writes (policy block, or until a freeze is durable) */
  private held: (() => void)[] = [];
  /** async writes waiting for queue room */
  private roomWaiters: (() => void)[] = [];
  /** entries durable on the secondary, waiting for the primary's own flush before their extents leave the activity log */
  private bothPending: Entry[] = [];
  private primaryFlushed = 0;
  private flushSeqs = new Set<number>();
  private pendingEnters = 0;
  private timer: ReturnType<typeof setInterval> | null = null;
  private resyncProgress: { done: number; total: number } | null = null;
  private syncedWaiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  private constructor(
    readonly volume: Volume,
    readonly name: string,
    readonly role: RoleRecord,
    readonly oos: OutOfSyncMap,
    readonly al: ActivityLogLike,
    private readonly o: Required<Pick<PrimaryOptions, 'ackTimeoutMs' | 'helloTimeoutMs' | 'maxQueueBytes' | 'resyncBatchBytes' | 'resyncWindowBytes'>>,
    options: PrimaryOptions,
  ) {
    this.bitmapKnown = oos.created !== true;
    this.mode = options.mode ?? 'sync';
    this.policy = options.policy ?? 'run';
    this.label = options.label ?? `session ${name}`;
  }

  /** Open a session on `volume` and start watching its writes (nothing is sent until `connect`). */
  static async open(volume: Volume, options: PrimaryOptions): Promise<PrimarySession> {
    if (volume.readOnly) throw new StrataError('read-only', 'A replication primary must be open for writing.');
    const role = options.role ?? (await RoleRecord.open(volume.ns));
    if (role.state.role === 'secondary') {
      throw new StrataError('invalid-argument', `This volume is a replication secondary. Promote it first (\`stratadisk replication promote\`) to replicate from it.`);
    }
    // written since its last session closed, by something that does not replicate: apart, and the bitmap is blind to it
    const content = role.state.content ?? null;
    const writtenOutside = role.state.role === 'primary' && content !== null && content !== contentBinding(volume);
    if (role.state.role !== 'primary' || role.state.gen.current === FRESH_GENERATION || writtenOutside || content !== null) {
      // a primary's data always has a generation of its own (a fresh one is nobody's); while a
      // session has the volume open, its content binding is unset
      await role.update((s) => ({ ...s, role: 'primary', content: null, gen: s.gen.current === FRESH_GENERATION || writtenOutside ? nextGeneration(s.gen) : s.gen }));
    }
    const s = new PrimarySession(
      volume,
      options.name,
      role,
      options.oos ?? new MemoryOutOfSync(),
      options.al ?? new NoActivityLog(),
      {
        ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
        helloTimeoutMs: options.helloTimeoutMs ?? 30_000,
        maxQueueBytes: options.maxQueueBytes ?? 64 << 20,
        resyncBatchBytes: options.resyncBatchBytes ?? 8 << 20,
        resyncWindowBytes: options.resyncWindowBytes ?? 64 << 20,
      },
      options,
    );
    if (writtenOutside) s.bitmapKnown = false;
    // the primary crashed with these extents hot: the secondary may hold writes it lost
    if (s.al.recovered.length > 0) {
      s.oos.markRuns(s.al.recovered);
      s.oosChanged = true;
      await s.oos.persist();
      s.oosChanged = false;
    }
    s.handle = volume.observe({
      mode: 'sync',
      observe: (e) => s.observe(e),
      commit: () => s.commit(),
      ended: (seq, ok) => s.ended(seq, ok),
    });
    return s;
  }

  private setState(state: SessionState): void {
    if (this.state === state) return;
    this.state = state;
    this.hooks.onState?.(this, state);
  }

  private get connected(): boolean {
    return this.state === 'syncing' || this.state === 'replicating';
  }

  // ---- the write path ------------------------------------------------------------------------

  private observe(e: VolumeEvent): void | Promise<void> {
    if (e.type === 'flush') {
      this.flushSeqs.add(e.seq);
      const c = this.conn;
      if (!this.connected || !c) return;
      const n = ++c.n;
      c.send({ t: 'f', n });
      if (this.mode === 'sync') return this.waitDurable(c, n);
      return;
    }
    if (e.runs.length === 0) return;
    this.live.set(e.seq, e.runs as number[]);
    if (this.touched) addBlocks(this.touched, e.runs);
    if (!this.connected) return this.apart(e.runs);
    this.pendingEnters++;
    return this.al.enter(e.runs).then(
      (token) => {
        this.pendingEnters--;
        return this.send(e, token);
      },
      (err) => {
        this.pendingEnters--;
        this.fail(asStrata(err, 'The activity log could not record the write'));
        return this.apart(e.runs);
      },
    );
  }

  private send(e: WriteEvent, token: number): void | Promise<void> {
    const c = this.conn;
    if (!this.connected || !c) return this.apart(e.runs);
    const bs = this.volume.blockSize;
    let pos = 0;
    let bytes = 0;
    for (let i = 0; i < e.runs.length; i += 2) {
      const len = e.runs[i + 1]! * bs;
      const data = e.data.subarray(pos, pos + len);
      pos += len;
      const n = ++c.n;
      if (e.kind === 'zero' && isZero(data)) c.send({ t: 'z', n, offset: e.runs[i]! * bs, length: len });
      else {
        // the event's buffers are the volume's until this observer settles: an async write settles
        // now, so its bytes are copied (a same-thread link passes them by reference)
        c.send({ t: 'w', n, offset: e.runs[i]! * bs, data: this.mode === 'async' ? data.slice() : data });
        bytes += len;
      }
    }
    // a send can fail the link at once (and freeze): then this write was never tracked
    if (c.ended) return this.apart(e.runs);
    this.track(c, { n: c.n, runs: e.runs as number[], bytes, token, volSeq: e.seq });
    if (this.mode === 'sync') return this.waitDurable(c, c.n);
    if (c.unapplied > this.o.maxQueueBytes) return new Promise<void>((r) => this.roomWaiters.push(r));
  }

  private track(c: Conn, entry: Entry): void {
    c.entries.push(entry);
    c.unapplied += entry.bytes;
    this.sentBytes += entry.bytes;
  }

  /** A write while not connected: out of sync; acknowledged once a new generation is durable (or held, policy block). */
  private apart(runs: readonly number[]): Promise<void> {
    this.oos.markRuns(runs);
    this.oosChanged = true;
    this.apartGen ??= this.frozenReady.then(() => this.newGeneration());
    if (this.policy === 'block' && this.state !== 'idle') {
      return this.apartGen.then(() => new Promise<void>((r) => this.held.push(r)));
    }
    return this.apartGen;
  }

  private async newGeneration(): Promise<void> {
    await this.role.update((s) => ({ ...s, gen: nextGeneration(s.gen) }));
  }

  private waitDurable(c: Conn, n: number): Promise<void> {
    if (c.durable >= n) return Promise.resolve();
    // the connection ended (a freeze): what waited is released as the freeze says
    if (c.ended) return this.frozenReady.then(() => (this.policy === 'block' ? new Promise<void>((r) => this.held.push(r)) : undefined));
    return new Promise<void>((resolve) => c.waiters.push({ n, resolve }));
  }

  private async commit(): Promise<void> {
    if (!this.oosChanged) return;
    this.oosChanged = false;
    try {
      await this.oos.persist();
    } catch (e) {
      this.oosChanged = true;
      throw e;
    }
  }

  private ended(seq: number, ok: boolean): void {
    const runs = this.live.get(seq);
    if (runs) {
      this.live.delete(seq);
      // the volume's own write failed after the secondary may have got it: the copy now differs there
      if (!ok) {
        this.oos.markRuns(runs);
        this.oosChanged = true;
      }
      return;
    }
    if (!this.flushSeqs.delete(seq)) return;
    if (ok && seq > this.primaryFlushed) {
      // a flush ended: every write before it is durable on the primary
      this.primaryFlushed = seq;
      this.releaseBoth();
    }
  }

  // ---- acknowledgements ----------------------------------------------------------------------

  private onAck(c: Conn, m: Extract<ToPrimary, { t: 'ack' }>): void {
    if (m.r > c.received) {
      c.received = m.r;
      c.progressAt = performance.now();
    }
    if (m.r > c.n || m.a > m.r || m.d > m.a) throw new StrataError('corrupt', `The secondary acknowledged message ${Math.max(m.a, m.d)} of ${c.n} sent.`);
    if (m.a > c.applied) {
      c.applied = m.a;
      while (c.appliedIdx < c.entries.length && c.entries[c.appliedIdx]!.n <= m.a) c.unapplied -= c.entries[c.appliedIdx++]!.bytes;
      if (c.unapplied <= this.o.maxQueueBytes && this.roomWaiters.length > 0) {
        const w = this.roomWaiters;
        this.roomWaiters = [];
        for (const r of w) r();
      }
    }
    if (m.d > c.durable) {
      c.durable = m.d;
      const done: number[] = [];
      while (c.head < c.entries.length && c.entries[c.head]!.n <= m.d) {
        const e = c.entries[c.head++]!;
        for (const x of e.runs) done.push(x);
        this.bothPending.push(e);
      }
      // whole blocks now durable there: the secondary has them (the bitmap forgets them)
      if (done.length > 0 && this.oos.dirtyBlocks > 0) {
        this.oos.clearRuns(done);
        this.oosChanged = true;
      }
      if (c.head > 1024 && c.head * 2 > c.entries.length) {
        c.entries = c.entries.slice(c.head);
        c.appliedIdx -= c.head;
        c.head = 0;
      }
      let i = 0;
      while (i < c.waiters.length && c.waiters[i]!.n <= m.d) c.waiters[i++]!.resolve();
      if (i > 0) c.waiters = c.waiters.slice(i);
      this.releaseBoth();
    }
    if (m.c > c.cut) {
      if (m.c > this.cutsSent) throw new StrataError('corrupt', `The secondary says it received cut ${m.c}; only ${this.cutsSent} were sent.`);
      c.cut = m.c;
      this.hooks.onCutReceived?.(this, m.c);
    }
  }

  /** Extents whose writes are durable on both sides leave the activity log. */
  private releaseBoth(): void {
    if (this.bothPending.length === 0 || this.pendingEnters > 0) return;
    let i = 0;
    while (i < this.bothPending.length && this.bothPending[i]!.volSeq < this.primaryFlushed) i++;
    if (i === 0) return;
    const c = this.conn;
    // tokens still in flight (not durable on the secondary) bound what may be released
    let bound = Number.MAX_SAFE_INTEGER;
    if (c) for (let k = c.head; k < c.entries.length; k++) bound = Math.min(bound, c.entries[k]!.token);
    for (let k = i; k < this.bothPending.length; k++) bound = Math.min(bound, this.bothPending[k]!.token);
    let top = 0;
    for (let k = 0; k < i; k++) if (this.bothPending[k]!.token !== NO_TOKEN) top = Math.max(top, this.bothPending[k]!.token);
    this.bothPending = this.bothPending.slice(i);
    this.al.releaseUpTo(Math.min(top, bound - 1));
  }

  // ---- connecting and resync -----------------------------------------------------------------

  /**
   * Connect to a secondary over `link` (first time, or to resume after a freeze): handshake,
   * then resync what the secondary lacks in the background while new writes flow. Resolves when
   * the stream runs; rejects (and closes the link) when the secondary refuses or the data
   * generations forbid it (`split-brain`). `synced()` resolves when the resync is complete.
   */
  async connect(link: Link<ToSecondary>): Promise<void> {
    try {
      if (this.state === 'closed') throw new StrataError('closed', `${this.label} is closed.`);
      if (this.state === 'connecting' || this.connected) throw new StrataError('invalid-argument', `${this.label} is already ${this.state}.`);
      this.hooks.beforeConnect?.(this);
    } catch (e) {
      // the link was handed over: a refused connect does not leave the peer waiting
      link.close();
      throw e;
    }
    await this.frozenReady;
    const c = new Conn(link);
    this.conn = c;
    this.setState('connecting');
    const welcome = new Promise<Extract<ToPrimary, { t: 'welcome' }>>((resolve, reject) => {
      c.welcome = resolve;
      c.refused = reject;
    });
    link.listen({
      message: (raw) => this.onMessage(c, raw),
      close: (reason) => this.lost(c, new StrataError('closed', `The link to the secondary of ${this.label} closed: ${reason}`)),
    });
    const gen = this.role.state.gen;
    c.send({ t: 'hello', v: REPLICATION_PROTOCOL, session: this.name, size: this.volume.size, blockSize: this.volume.blockSize, uuid: this.volume.manifest.uuid, mode: this.mode, gated: this.gated, gen, decided: this.decided });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StrataError('timeout', `The secondary of ${this.label} did not answer within ${this.o.helloTimeoutMs} ms.`)), this.o.helloTimeoutMs);
    });
    let w: Extract<ToPrimary, { t: 'welcome' }>;
    try {
      w = await Promise.race([welcome, timeout]);
    } catch (e) {
      this.endConn(c, 'refused');
      if ((this.state as SessionState) === 'connecting') this.setState('refused');
      this.lastError = asStrata(e, 'Connecting failed');
      throw this.lastError;
    } finally {
      clearTimeout(timer);
    }
    const verdict = compareGenerations(gen, w.gen);
    const refusal = verdictError(verdict, 'this primary', 'the secondary');
    if (refusal) {
      c.send({ t: 'stop', reason: 'data generations forbid replication (split brain or stale primary)', released: this.decided });
      this.endConn(c, 'refused');
      this.setState('refused');
      this.lastError = refusal;
      throw refusal;
    }
    const peer = this.role.state.peer;
    if (verdict === 'fresh-secondary' || (peer !== null && peer !== w.uuid) || !this.bitmapKnown) {
      // a new secondary, or a bitmap that was not kept (what the secondary lacks is unknown): everything
      await this.markEverything(w.empty);
    } else if (!w.consistent) {
      // an interrupted resync: the bitmap still holds what it lacks (nothing was cleared without its acknowledgement)
    }
    if (peer !== w.uuid) await this.role.update((s) => ({ ...s, peer: w.uuid }));
    if (c.ended) throw this.lastError ?? new StrataError('closed', `The link to the secondary of ${this.label} closed while connecting.`);
    this.setState('syncing');
    this.startTimer();
    void this.resync(c).catch((e) => this.lost(c, asStrata(e, 'The resync failed')));
  }

  /** Resolves when the current connection's resync is complete (state `replicating`). */
  synced(): Promise<void> {
    if (this.state === 'replicating') return Promise.resolve();
    if (!this.connected && this.state !== 'connecting') return Promise.reject(this.lastError ?? new StrataError('closed', `${this.label} is ${this.state}.`));
    return new Promise((resolve, reject) => this.syncedWaiters.push({ resolve, reject }));
  }

  private async markEverything(empty: boolean): Promise<void> {
    const bs = this.volume.blockSize;
    const runs: number[] = [];
    if (empty) {
      for (const x of await this.volume.map()) if (x.present) runs.push(Math.floor(x.start / bs), Math.ceil((x.start + x.length) / bs) - Math.floor(x.start / bs));
    } else {
      runs.push(0, Math.ceil(this.volume.size / bs));
    }
    this.oos.markRuns(runs);
    this.oosChanged = true;
    await this.oos.persist();
    this.oosChanged = false;
  }

  private async resync(c: Conn): Promise<void> {
    const bs = this.volume.blockSize;
    const total = this.oos.dirtyBlocks;
    let done = 0;
    this.resyncProgress = { done: 0, total };
    c.send({ t: 'sync-begin', n: ++c.n, blocks: total });
    this.track(c, { n: c.n, runs: [], bytes: 0, token: NO_TOKEN, volSeq: 0 });
    const batchBlocks = Math.max(1, Math.floor(this.o.resyncBatchBytes / bs));
    let cursor = 0;
    for (;;) {
      if (c.ended) return;
      const runs = this.oos.runs(cursor, batchBlocks);
      if (runs.length === 0) {
        // wait until everything sent is durable there, then look again from the start
        await this.waitDurable(c, c.n);
        if (c.ended) return;
        if (this.oos.dirtyBlocks === 0) break;
        cursor = 0;
        continue;
      }
      // blocks of live writes in flight now or started while we read are left to those writes
      const touched = new Set<number>();
      for (const r of this.live.values()) addBlocks(touched, r);
      this.touched = touched;
      let datas: Uint8Array[];
      try {
        datas = await Promise.all(pairs(runs).map(([first, count]) => this.volume.read(first * bs, count * bs)));
      } catch (e) {
        this.touched = null;
        throw e;
      }
      // the sends below run in this same turn: no live write can be observed between here and them
      this.touched = null;
      if (c.ended) return;
      for (let r = 0; r < datas.length; r++) {
        const first = runs[2 * r]!;
        const count = runs[2 * r + 1]!;
        const data = datas[r]!;
        // one kernel call says which blocks are zero (they go as zero ranges: a sparse extent sends only what it holds)
        const { zero } = scanBlocks(data, bs);
        // each block: skipped (left to a live write), zero, or data; one message per run of a kind
        const kind = (b: number): number => (touched.has(first + b) ? 0 : zero[b] ? 1 : 2);
        let s = 0;
        while (s < count) {
          const what = kind(s);
          let e = s + 1;
          while (e < count && kind(e) === what) e++;
          if (what !== 0) {
            const n = ++c.n;
            const offset = (first + s) * bs;
            let bytes = 0;
            if (what === 1) c.send({ t: 'z', n, offset, length: (e - s) * bs });
            else {
              c.send({ t: 'w', n, offset, data: data.subarray(s * bs, e * bs) });
              bytes = (e - s) * bs;
            }
            this.track(c, { n, runs: [first + s, e - s], bytes, token: NO_TOKEN, volSeq: 0 });
          }
          s = e;
        }
        cursor = first + count;
        done += count;
      }
      this.resyncProgress = { done: Math.min(done, total), total };
      this.hooks.onProgress?.(this, Math.min(done, total), total);
      // a window of resync bytes in flight
      while (!c.ended && this.unconfirmedBytes(c) > this.o.resyncWindowBytes) {
        const target = c.entries[c.head + Math.floor((c.entries.length - c.head) / 2)]!.n;
        await this.waitDurable(c, target);
      }
    }
    const gen = this.role.state.gen;
    const n = ++c.n;
    c.send({ t: 'sync-end', n, gen });
    this.track(c, { n, runs: [], bytes: 0, token: NO_TOKEN, volSeq: 0 });
    await this.waitDurable(c, n);
    if (c.ended) return;
    await this.oos.persist();
    this.resyncProgress = null;
    this.bitmapKnown = true;
    this.inStep = true;
    this.apartGen = null;
    this.setState('replicating');
    this.releaseHeld();
    const w = this.syncedWaiters;
    this.syncedWaiters = [];
    for (const x of w) x.resolve();
  }

  private unconfirmedBytes(c: Conn): number {
    let b = 0;
    for (let k = c.head; k < c.entries.length; k++) b += c.entries[k]!.bytes;
    return b;
  }

  private onMessage(c: Conn, raw: unknown): void {
    if (c.ended) return;
    let m: ToPrimary;
    try {
      m = parseToPrimary(raw);
      switch (m.t) {
        case 'welcome':
          if (!c.welcome) throw new StrataError('corrupt', 'The secondary sent a second welcome.');
          c.welcome(m);
          c.welcome = null;
          return;
        case 'refuse': {
          const e = new StrataError(m.code, `The secondary refused ${this.label}: ${m.message}`);
          if (c.refused) c.refused(e);
          this.lost(c, e);
          return;
        }
        case 'err':
          this.lost(c, new StrataError(m.code, `The secondary of ${this.label} failed: ${m.message}`));
          return;
        case 'ack':
          this.onAck(c, m);
          return;
        case 'pong':
          return;
      }
    } catch (e) {
      this.lost(c, asStrata(e, 'A message from the secondary'));
    }
  }

  /** The connection failed: report it (the manager freezes every session, this one included). */
  private lost(c: Conn, e: StrataError): void {
    if (c.ended || c !== this.conn) return;
    c.refused?.(e);
    c.refused = null;
    if (this.state === 'connecting') {
      this.endConn(c, 'connect failed');
      return;
    }
    this.fail(e);
  }

  private fail(e: StrataError): void {
    if (!this.connected) return;
    this.lastError = e;
    if (this.hooks.onFailure) this.hooks.onFailure(this, e);
    else void this.freeze(e.message);
  }

  // ---- freeze, resume, close -----------------------------------------------------------------

  /**
   * Stop the stream at once (nothing more reaches the secondary), mark everything it has not
   * confirmed durable as out of sync, and start a new data generation. Resolves when that is
   * durable; writes that waited for the secondary are then acknowledged (policy `run`) or held
   * until a resync completes (policy `block`).
   */
  freeze(reason: string, decided?: number): Promise<void> {
    if (this.state === 'frozen' || this.state === 'closed') return this.frozenReady;
    const c = this.conn;
    // gated: the last cut released (by the manager for every session) is final for this connection
    if (c && this.gated && (this.connected || this.state === 'connecting')) this.decided = decided ?? this.releasedSent;
    const wasApart = !this.connected;
    this.setState('frozen');
    this.inStep = false;
    const waiting: Waiter[] = [];
    let unconfirmedRuns = 0;
    if (c) {
      if (!c.ended) c.send({ t: 'stop', reason: reason.slice(0, 512), released: this.decided });
      const unconfirmed: number[] = [];
      for (let k = c.head; k < c.entries.length; k++) for (const x of c.entries[k]!.runs) unconfirmed.push(x);
      unconfirmedRuns = unconfirmed.length;
      if (unconfirmed.length > 0) {
        this.oos.markRuns(unconfirmed);
        this.oosChanged = true;
      }
      waiting.push(...c.waiters);
      c.waiters = [];
      this.endConn(c, reason);
    }
    const rejectSynced = this.syncedWaiters;
    this.syncedWaiters = [];
    for (const x of rejectSynced) x.reject(this.lastError ?? new StrataError('frozen', `${this.label} froze: ${reason}`));
    this.resyncProgress = null;
    // writes sent and not confirmed may be on this side only: that is already "written apart".
    // Otherwise the first write accepted apart starts the new generation (so a planned failback,
    // with nothing written here after the freeze, is no split brain).
    const diverged = !wasApart && (unconfirmedRuns > 0 || waiting.length > 0);
    if (!wasApart) this.apartGen = null;
    this.frozenReady = (async () => {
      if (diverged) {
        await this.newGeneration();
        this.apartGen = Promise.resolve();
      }
      this.oosChanged = false;
      await this.oos.persist();
    })();
    this.frozenReady.catch(() => {});
    const release = () => {
      for (const w of waiting) {
        if (this.policy === 'block') this.held.push(w.resolve);
        else w.resolve();
      }
      const rooms = this.roomWaiters;
      this.roomWaiters = [];
      for (const r of rooms) r();
    };
    this.frozenReady.then(release, release);
    return this.frozenReady;
  }

  private releaseHeld(): void {
    const h = this.held;
    this.held = [];
    for (const r of h) r();
  }

  private endConn(c: Conn, reason: string): void {
    if (c.ended) return;
    c.ended = true;
    // a connect still waiting for the welcome learns why at once
    c.refused?.(new StrataError('frozen', `${this.label} stopped connecting: ${reason}`));
    c.refused = null;
    c.link.close();
    this.stopTimer();
  }

  /** Gated sessions: put cut `cut` into the stream (the manager does this for every session at one instant). */
  sendCut(cut: number): void {
    const c = this.conn;
    if (!this.connected || !c) return;
    c.lastCutAt = c.n + 1;
    const n = ++c.n;
    this.cutsSent = cut;
    c.send({ t: 'cut', n, cut });
    this.track(c, { n, runs: [], bytes: 0, token: NO_TOKEN, volSeq: 0 });
  }
  private cutsSent = 0;

  /** Has anything entered the stream since the last cut marker? (An idle group takes no cuts.) */
  get sentSinceCut(): boolean {
    const c = this.conn;
    return c !== null && !c.ended && c.n > c.lastCutAt;
  }

  /** Gated sessions: the secondary may apply everything up to cut `cut`. */
  releaseCut(cut: number): void {
    if (!this.connected) return;
    this.releasedSent = cut;
    this.conn?.send({ t: 'rel', cut });
  }
  private releasedSent = 0;
  /** the final cut of the previous connection (told to the secondary in the next hello) */
  private decided = 0;

  /** Cut numbering restarts with each connection (the secondary's does). */
  get cutReceived(): number {
    return this.conn?.cut ?? 0;
  }

  private startTimer(): void {
    this.stopTimer();
    const every = Math.max(10, Math.min(1000, Math.floor(this.o.ackTimeoutMs / 4)));
    this.timer = setInterval(() => this.tick(), every);
    (this.timer as { unref?: () => void }).unref?.();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private tick(): void {
    const c = this.conn;
    if (!c || c.ended || !this.connected) return;
    // a secondary that stops receiving is gone (one that holds writes for a cut, or flushes slowly, is not)
    if (c.received < c.n && performance.now() - c.progressAt > this.o.ackTimeoutMs) {
      this.lost(c, new StrataError('timeout', `The secondary of ${this.label} has not confirmed receiving message ${c.received + 1} within ${this.o.ackTimeoutMs} ms.`));
      return;
    }
    c.send({ t: 'ping' });
    // extents wait for the primary's own flush to leave the activity log: do not let them pile up
    if (this.bothPending.length > 0) void this.volume.flush().catch(() => {});
  }

  status(): SessionStatus {
    const c = this.conn;
    let lagWrites = 0;
    let lagBytes = 0;
    if (c && !c.ended) {
      lagWrites = c.entries.length - c.head;
      lagBytes = this.unconfirmedBytes(c);
    }
    return {
      name: this.name,
      mode: this.mode,
      state: this.state,
      lagWrites,
      lagBytes,
      outOfSyncBytes: this.oos.dirtyBlocks * this.volume.blockSize,
      sentBytes: this.sentBytes,
      resync: this.resyncProgress ? { ...this.resyncProgress } : null,
      lastError: this.lastError ? { code: this.lastError.code, message: this.lastError.message } : null,
    };
  }

  /** True when the secondary holds the primary's current generation and nothing is out of sync. */
  get inSync(): boolean {
    return this.inStep && this.state === 'replicating' && this.oos.dirtyBlocks === 0;
  }

  /**
   * End the session in order: stop the stream (the secondary flushes what it applied), persist
   * the bitmap, detach from the volume. What the secondary had not confirmed is out of sync.
   */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    if (this.connected || this.state === 'connecting') await this.freeze('the session was closed');
    await this.frozenReady.catch(() => {});
    this.setState('closed');
    this.releaseHeld();
    await this.handle?.detach();
    // what the volume holds now: a write by anything else before the next session shows as a change
    await this.role.update((st) => ({ ...st, content: contentBinding(this.volume) })).catch(() => {});
    await this.oos.persist().catch(() => {});
    await this.oos.close();
    await this.al.close();
  }
}

/** entries that entered nothing in the activity log */
const NO_TOKEN = Number.MAX_SAFE_INTEGER;

function pairs(runs: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < runs.length; i += 2) out.push([runs[i]!, runs[i + 1]!]);
  return out;
}

function addBlocks(set: Set<number>, runs: readonly number[]): void {
  for (let i = 0; i < runs.length; i += 2) for (let b = runs[i]!; b < runs[i]! + runs[i + 1]!; b++) set.add(b);
}

function asStrata(e: unknown, what: string): StrataError {
  if (e instanceof StrataError) return e;
  return new StrataError('io', `${what}: ${(e as Error)?.message ?? e}`);
}
