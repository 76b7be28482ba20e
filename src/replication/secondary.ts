/**
 * The secondary end of a replication session: applies a primary's stream of writes to a local
 * volume in stream order and says how far it got (`ack`: applied, durable, cuts received).
 *
 * - Stream numbers must follow one another: a repeat is dropped (a duplicating transport), a gap
 *   (a lost or reordered message) ends the session with `corrupt`, so the primary freezes rather
 *   than leave a hole in the copy.
 * - Writes are started in stream order without waiting for one another: the volume takes each
 *   write's blocks in call order (a FIFO range lock), so writes of the same blocks land in
 *   order and others overlap.
 * - Sync sessions (DRBD protocol C): the secondary flushes as soon as something applied is not
 *   durable (one flush covers everything applied before it starts: group commit) and the
 *   primary completes a write only when `d` covers it. Async sessions flush where the primary
 *   flushed.
 * - Gated sessions (async members of a consistency group): everything after the last released
 *   cut is held in memory, unapplied, until the primary releases the cut that follows it; at a
 *   stop or a lost link, what is held is dropped. So the secondaries of a group only ever hold
 *   writes up to a cut every secondary of the group had received.
 * - A resync (`sync-begin` .. `sync-end`) writes blocks out of their original order, so the
 *   volume is no single point in time meanwhile: the role record says `consistent: false` and a
 *   snapshot keeps the last consistent state until `sync-end` is durable.
 */
import { StrataError } from '../errors.js';
import type { Link } from '../consistency/link.js';
import type { Volume } from '../volume/volume.js';
import { parseToSecondary, REPLICATION_PROTOCOL, type Generations, type ToPrimary, type ToSecondary } from './protocol.js';
import { RoleRecord, type RoleState } from './roles.js';

type Stream = Extract<ToSecondary, { n: number }>;

export interface SecondaryOptions {
  /** name in messages (the directory, say) */
  label?: string;
  /**
   * Called when a new connection has settled what the previous one left (held cuts applied up
   * to the decided one, the rest dropped) and before anything of the new one is applied: the
   * volume is then at the point in time the group stopped at. Tests read it; an operator could
   * snapshot it.
   */
  onSettled?: (volume: Volume) => void | Promise<void>;
}

export interface SecondaryStatus {
  connected: boolean;
  session: string | null;
  mode: 'sync' | 'async' | null;
  /** highest stream number applied / durable in the current connection */
  applied: number;
  durable: number;
  /** messages and bytes held for a cut release */
  heldMessages: number;
  heldBytes: number;
  role: RoleState;
  /** why the last connection ended */
  lastEnd: string | null;
}

/** Serves one primary at a time; `accept` each new link. */
export class Secondary {
  private current: Connection | null = null;
  lastEnd: string | null = null;
  /**
   * Gated: cuts received but not released when the link was lost. Whether the group released
   * them is only known to the primary, which says so in its next hello (`decided`); until then
   * they are kept (in memory: a restart of this process drops them, and the primary's bitmap
   * resends what they held).
   */
  prepared: Stream[] | null = null;

  private constructor(
    readonly volume: Volume,
    readonly role: RoleRecord,
    readonly label: string,
    readonly options: SecondaryOptions,
  ) {}

  static async open(volume: Volume, options: SecondaryOptions = {}): Promise<Secondary> {
    if (volume.readOnly) throw new StrataError('read-only', `A secondary must be writable; ${options.label ?? 'this volume'} is open read-only.`);
    const role = await RoleRecord.open(volume.ns);
    const label = options.label ?? 'the secondary';
    if (role.state.role === 'primary') {
      throw new StrataError('invalid-argument', `${label} is a replication primary. Demote it first (\`stratadisk replication demote\`) to serve it as a secondary.`);
    }
    return new Secondary(volume, role, label, options);
  }

  /** Take a primary's link. A second primary while one is connected is refused (`locked`). */
  accept(link: Link<ToPrimary>): void {
    if (this.current && !this.current.ended) {
      link.send({ t: 'refuse', code: 'locked', message: `${this.label} already replicates from another primary (session ${this.current.session ?? '?'}).` });
      link.close();
      return;
    }
    this.current = new Connection(this, link);
  }

  status(): SecondaryStatus {
    const c = this.current && !this.current.ended ? this.current : null;
    return {
      connected: c !== null,
      session: c?.session ?? null,
      mode: c?.mode ?? null,
      applied: c?.applied ?? 0,
      durable: c?.durable ?? 0,
      heldMessages: c?.held.length ?? 0,
      heldBytes: c?.heldBytes ?? 0,
      role: this.role.state,
      lastEnd: this.lastEnd,
    };
  }

  /** Resolves when the current connection (if any) has ended and settled. */
  async idle(): Promise<void> {
    await this.current?.done;
  }

  /** End the current connection (its unapplied writes are dropped, applied ones flushed). */
  async close(): Promise<void> {
    this.current?.end('the secondary closed');
    await this.idle();
  }
}

class Connection {
  ended = false;
  session: string | null = null;
  mode: 'sync' | 'async' | null = null;
  gated = false;
  /** last stream number received */
  received = 0;
  /** stream numbers below or at this were applied (in order) */
  applied = 0;
  durable = 0;
  cutReceived = 0;
  released = 0;
  held: Stream[] = [];
  heldBytes = 0;
  /** applies in flight, in stream order: [n, promise] */
  private inflight: { n: number; p: Promise<void>; done: boolean }[] = [];
  /** serialises control steps (sync-begin/end, flush) with the applies before them */
  private chain: Promise<void> = Promise.resolve();
  private flushing = false;
  private ackQueued = false;
  private lastAck = { r: -1, a: -1, d: -1, c: -1 };
  private helloDone = false;
  private helloSeen = false;
  private primaryUuid: string | null = null;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly owner: Secondary,
    private readonly link: Link<ToPrimary>,
  ) {
    this.done = new Promise((r) => (this.resolveDone = r));
    link.listen({
      message: (m) => this.onMessage(m),
      close: (reason) => this.end(`the link closed: ${reason}`, true),
    });
  }

  private fail(e: unknown): void {
    const err = e instanceof StrataError ? e : new StrataError('io', `The secondary could not apply the stream: ${(e as Error)?.message ?? e}`);
    this.link.send({ t: 'err', code: err.code, message: err.message });
    this.end(err.message);
  }

  end(reason: string, lost = false): void {
    if (this.ended) return;
    this.ended = true;
    this.owner.lastEnd = reason;
    // cuts held when the link is lost wait for the primary's decision (next hello)
    if (lost && this.gated && this.held.some((m) => m.t === 'cut')) this.owner.prepared = this.held;
    this.held = [];
    this.heldBytes = 0;
    this.link.close();
    // applied writes are made durable (the primary treats what it did not see acknowledged as out of sync anyway)
    const settle = Promise.allSettled(this.inflight.map((x) => x.p))
      .then(() => this.chain)
      .then(() => this.owner.volume.flush())
      .catch(() => {});
    void settle.then(() => this.resolveDone());
  }

  private onMessage(raw: unknown): void {
    if (this.ended) return;
    let m: ToSecondary;
    try {
      m = parseToSecondary(raw);
    } catch (e) {
      this.fail(e);
      return;
    }
    try {
      if (!this.helloDone) {
        if (this.helloSeen) throw new StrataError('corrupt', `The primary sent "${m.t}" before the secondary answered its hello.`);
        if (m.t !== 'hello') throw new StrataError('corrupt', `The primary sent "${m.t}" before its hello.`);
        this.helloSeen = true;
        void this.hello(m).catch((e) => this.fail(e));
        return;
      }
      switch (m.t) {
        case 'hello':
          throw new StrataError('corrupt', 'The primary sent a second hello.');
        case 'ping':
          this.link.send({ t: 'pong' });
          return;
        case 'rel':
          if (m.cut > this.cutReceived) throw new StrataError('corrupt', `The primary released cut ${m.cut} before sending it (last ${this.cutReceived}).`);
          if (m.cut > this.released) {
            this.released = m.cut;
            this.drainHeld();
          }
          return;
        case 'stop':
          // the group's final cut: apply what is held up to it, drop the rest
          if (this.gated && m.released > this.released) {
            this.released = Math.min(m.released, this.cutReceived);
            this.drainHeld();
          }
          this.end(`the primary stopped the session: ${m.reason}`);
          return;
        default:
          this.onStream(m);
      }
    } catch (e) {
      this.fail(e);
    }
  }

  private async hello(m: Extract<ToSecondary, { t: 'hello' }>): Promise<void> {
    const vol = this.owner.volume;
    if (m.v !== REPLICATION_PROTOCOL) throw new StrataError('unsupported', `The primary speaks replication protocol ${m.v}; this secondary speaks ${REPLICATION_PROTOCOL}. Use the same stratadisk release on both sides.`);
    if (m.size !== vol.size || m.blockSize !== vol.blockSize) {
      this.link.send({ t: 'refuse', code: 'invalid-argument', message: `The primary volume is ${m.size} bytes in ${m.blockSize}-byte blocks; ${this.owner.label} is ${vol.size} bytes in ${vol.blockSize}-byte blocks. Create the secondary with the primary's size and block size.` });
      this.end('refused: size or block size differ');
      return;
    }
    const role = this.owner.role.state;
    this.session = m.session;
    this.mode = m.mode;
    this.gated = m.gated;
    await this.settlePrepared(m.decided);
    await this.owner.options.onSettled?.(vol);
    // the pairing is recorded at the stream's first message: a primary that refuses (split brain) changes nothing here
    this.primaryUuid = m.uuid;
    const now = role;
    const empty = (await vol.map()).every((e) => !e.present);
    this.helloDone = true;
    this.link.send({ t: 'welcome', v: REPLICATION_PROTOCOL, gen: now.gen, consistent: now.consistent, uuid: vol.manifest.uuid, empty });
    this.ack();
  }

  /** Apply the previous connection's held cuts up to `decided` (in stream order), drop the rest. */
  private async settlePrepared(decided: number): Promise<void> {
    const held = this.owner.prepared;
    this.owner.prepared = null;
    if (!held) return;
    let upTo = -1;
    for (let i = 0; i < held.length; i++) {
      const m = held[i]!;
      if (m.t === 'cut') {
        if (m.cut > decided) break;
        upTo = i;
      }
    }
    const vol = this.owner.volume;
    for (let i = 0; i <= upTo; i++) {
      const m = held[i]!;
      if (m.t === 'w') await vol.write(m.offset, m.data);
      else if (m.t === 'z') await vol.writeZeroes(m.offset, m.length);
      else if (m.t === 'f') await vol.flush();
      else if (m.t === 'sync-begin') await this.beginResync(m.blocks);
      else if (m.t === 'sync-end') await this.endResync(m.gen);
    }
    await vol.flush();
  }

  private onStream(m: Stream): void {
    if (m.n <= this.received) return; // a repeat (a duplicating transport): already have it
    if (m.n !== this.received + 1) throw new StrataError('corrupt', `The stream skipped from message ${this.received} to ${m.n}: a message was lost or reordered. The session ends; the primary resynchronises what the secondary lacks.`);
    this.received = m.n;
    if (m.t === 'cut') {
      if (m.cut <= this.cutReceived) throw new StrataError('corrupt', `Cut ${m.cut} follows cut ${this.cutReceived}.`);
      this.cutReceived = m.cut;
    }
    if (this.gated) {
      // everything waits for the release of the cut that follows it
      this.held.push(m);
      if (m.t === 'w') this.heldBytes += m.data.length;
      this.drainHeld();
      this.ack();
      return;
    }
    if (m.t === 'cut') {
      this.done1(m.n);
      this.ack();
      return;
    }
    this.apply(m);
  }

  /** Apply held messages up to (and with) the last cut marker released. */
  private drainHeld(): void {
    let upTo = -1;
    for (let i = 0; i < this.held.length; i++) {
      const m = this.held[i]!;
      if (m.t === 'cut') {
        if (m.cut > this.released) break;
        upTo = i;
      }
    }
    if (upTo < 0) return;
    const ready = this.held.slice(0, upTo + 1);
    this.held = this.held.slice(upTo + 1);
    for (const m of ready) {
      if (m.t === 'w') this.heldBytes -= m.data.length;
      if (m.t === 'cut') this.done1(m.n);
      else this.apply(m);
    }
  }

  /** A stream message needing no work is done once everything before it is. */
  private done1(n: number): void {
    this.track(n, Promise.resolve());
  }

  private apply(m: Stream): void {
    const vol = this.owner.volume;
    const bs = vol.blockSize;
    switch (m.t) {
      case 'w': {
        if (m.offset % bs !== 0 || m.data.length % bs !== 0 || m.offset + m.data.length > vol.size) throw new StrataError('corrupt', `A write at ${m.offset} of ${m.data.length} bytes is not whole blocks inside the volume.`);
        if (m.data.length === 0) return this.done1(m.n);
        this.track(m.n, this.chain.then(() => vol.write(m.offset, m.data)));
        return;
      }
      case 'z': {
        if (m.offset % bs !== 0 || m.length % bs !== 0 || m.offset + m.length > vol.size) throw new StrataError('corrupt', `A zero range at ${m.offset} of ${m.length} bytes is not whole blocks inside the volume.`);
        if (m.length === 0) return this.done1(m.n);
        this.track(m.n, this.chain.then(() => vol.writeZeroes(m.offset, m.length)));
        return;
      }
      case 'f': {
        this.step(m.n, async () => {
          await vol.flush();
          if (m.n > this.durable) this.durable = m.n;
        });
        return;
      }
      case 'sync-begin':
        this.step(m.n, async () => {
          await this.pair();
          await this.beginResync(m.blocks);
        });
        return;
      case 'sync-end':
        this.step(m.n, async () => {
          await this.endResync(m.gen);
          if (m.n > this.durable) this.durable = m.n;
        });
        return;
      case 'cut':
        return this.done1(m.n);
    }
  }

  /** The primary accepted the pairing (it sent its stream): this volume is its secondary. */
  private async pair(): Promise<void> {
    const role = this.owner.role.state;
    const uuid = this.primaryUuid;
    if (uuid !== null && (role.role !== 'secondary' || role.peer !== uuid)) await this.owner.role.update((s) => ({ ...s, role: 'secondary', peer: uuid }));
  }

  /** A resync starts: keep the last consistent state in a snapshot while blocks arrive out of order. */
  private async beginResync(blocks: number): Promise<void> {
    if (blocks === 0) return;
    const role = this.owner.role.state;
    let snapshot = role.resyncSnapshot;
    if (role.consistent || snapshot === null) {
      snapshot = `replication-resync-${Date.now().toString(36)}`;
      await this.owner.volume.snapshot(snapshot);
    }
    await this.owner.role.update((s) => ({ ...s, consistent: false, resyncSnapshot: snapshot }));
  }

  /** A resync ended: durable, consistent again, holding the primary's generation. */
  private async endResync(gen: Generations): Promise<void> {
    const vol = this.owner.volume;
    await vol.flush();
    const before = this.owner.role.state.resyncSnapshot;
    await this.owner.role.update((s) => ({ ...s, consistent: true, resyncSnapshot: null, gen: adopt(gen) }));
    if (before) await vol.deleteSnapshot(before).catch(() => {});
  }

  /**
   * A control step: runs after every apply before it has ended, and the applies after it wait
   * for it (they chain on `chain`).
   */
  private step(n: number, fn: () => Promise<void>): void {
    const before = Promise.all(this.inflight.map((x) => x.p));
    const p = Promise.all([before, this.chain]).then(fn);
    this.chain = p.catch(() => {});
    this.track(n, p);
  }

  private track(n: number, p: Promise<void>): void {
    const entry = { n, p, done: false };
    this.inflight.push(entry);
    p.then(
      () => {
        entry.done = true;
        if (this.ended) return;
        // applied advances over the finished prefix, in stream order
        while (this.inflight.length > 0 && this.inflight[0]!.done) this.applied = this.inflight.shift()!.n;
        // group commit: one flush at a time covers everything applied before it started
        this.flushSoon();
        this.ack();
      },
      (e) => this.fail(e),
    );
  }

  /** Sync sessions: flush whatever is applied and not durable (one flush at a time). */
  private flushSoon(): void {
    if (this.flushing || this.ended || this.applied <= this.durable) return;
    this.flushing = true;
    const upTo = this.applied;
    this.owner.volume.flush().then(
      () => {
        this.flushing = false;
        if (upTo > this.durable) this.durable = upTo;
        this.ack();
        this.flushSoon();
      },
      (e) => {
        this.flushing = false;
        this.fail(e);
      },
    );
  }

  private ack(): void {
    if (this.ackQueued || this.ended) return;
    this.ackQueued = true;
    queueMicrotask(() => {
      this.ackQueued = false;
      if (this.ended) return;
      const { received: r, applied: a, cutReceived: c } = this;
      const d = Math.min(this.durable, a);
      if (r === this.lastAck.r && a === this.lastAck.a && d === this.lastAck.d && c === this.lastAck.c) return;
      this.lastAck = { r, a, d, c };
      this.link.send({ t: 'ack', r, a, d, c });
    });
  }
}

function adopt(g: Generations): Generations {
  return { current: g.current, history: g.history.slice() };
}
