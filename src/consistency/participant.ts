/**
 * A participant (member) of a consistency group, on any transport. It registers with the host;
 * on a prepare it runs the application's `prepare` callback (get ready, or veto) while still
 * writing; on a freeze it closes its write gate (new writes are held, in-flight ones finish), runs the
 * application's `freeze` callback (flush its own buffers, or veto), acknowledges; on thaw it
 * reopens the gate and runs `thaw`; on post-snapshot it runs `postSnapshot(id)` (for example to
 * truncate its own log). It thaws by itself when the freeze limit passes or the link to the
 * host is lost, so a dead coordinator never leaves it frozen.
 *
 * Its block I/O goes through the same link to the host that owns the volumes
 * ({@link Participant.volume}), so its writes and its acknowledgement arrive in order.
 */
import { StrataError } from '../errors.js';
import { DEFAULT_FREEZE_LIMIT_MS } from './coordinator.js';
import { FreezableVolume, WriteGate, type WritableVolume } from './gate.js';
import { realClock, type Clock, type Link, type TimerHandle } from './link.js';
import { PROTOCOL_VERSION, parseToMember, type GroupVolumeInfo, type SetSnapshot, type ToHost, type ToMember } from './protocol.js';

export interface FreezeContext {
  attempt: number;
  /** the participant thaws by itself this many ms after the freeze */
  limitMs: number;
}

export interface ThawContext {
  attempt: number;
  /** true when the snapshot was taken; false when the attempt was aborted */
  taken: boolean;
  reason?: string;
}

export type FreezeAnswer = void | { veto: string };

export interface ParticipantCallbacks {
  /**
   * A snapshot is coming: get ready while still writing (e.g. start flushing, finish a
   * checkpoint), so that the freeze is short. Return `{ veto: reason }` (or throw) to refuse.
   */
  prepare?(ctx: { attempt: number }): FreezeAnswer | Promise<FreezeAnswer>;
  /**
   * Flush your own buffers; return `{ veto: reason }` (or throw) to refuse the snapshot. Runs
   * after the gate has closed and in-flight gated writes have finished, so write your buffers
   * with the volumes directly (`participant.volume(name)`), not through the gate.
   */
  freeze?(ctx: FreezeContext): FreezeAnswer | Promise<FreezeAnswer>;
  /**
   * The attempt is over (snapshot taken, or aborted — also when it was aborted after `prepare`,
   * before any freeze); held writes are released after this.
   */
  thaw?(ctx: ThawContext): void | Promise<void>;
  /** The snapshot `snapshotId` exists on every volume of the set. */
  postSnapshot?(snapshotId: string, ctx: { attempt: number }): void | Promise<void>;
}

export interface ParticipantOptions {
  name: string;
  callbacks?: ParticipantCallbacks;
  clock?: Clock;
  /** never stay frozen longer than this, whatever the host says (default 60 s) */
  freezeLimitMs?: number;
  /**
   * `false` acknowledges freezes without closing the gate: writes go on during the snapshot.
   * Only for showing what the freeze is for (the tests' control runs); default true.
   */
  hold?: boolean;
}

interface Frozen {
  attempt: number;
  timer: TimerHandle;
  /** freeze callback ran (so thaw must run) */
  notified: boolean;
}

export class Participant {
  readonly gate = new WriteGate();
  readonly name: string;
  /** Resolves once the host has registered this participant (writes are held until then). */
  readonly ready: Promise<void>;
  /** Resolves with the reason when the link to the host is gone. */
  readonly lost: Promise<string>;
  /** Volumes of the group, from the host's welcome. */
  volumes: GroupVolumeInfo[] = [];
  /** Snapshot ids seen in post-snapshot messages, oldest first. */
  readonly snapshotsSeen: string[] = [];
  /** How many freezes ended by this participant's own timer (the host was silent past the limit). */
  autoThaws = 0;

  private readonly clock: Clock;
  private readonly callbacks: ParticipantCallbacks;
  private readonly hold: boolean;
  private readonly limitMs: number;
  private current: Frozen | undefined;
  /** an attempt this participant prepared for and has not been frozen for yet */
  private preparing: number | undefined;
  private pending = new Map<number, { resolve(m: ToMember & { t: 'done' }): void; reject(e: unknown): void }>();
  private nextReq = 1;
  private closed = false;
  private beatTimer: TimerHandle | undefined;
  private heartbeatMs = 0;
  private welcomed = false;
  private resolveReady!: () => void;
  private rejectReady!: (e: unknown) => void;
  private resolveLost!: (reason: string) => void;
  /** the tail of the thaw / post-snapshot callback queue */
  private work: Promise<void> = Promise.resolve();
  /** the thaw / post-snapshot job running now (one at a time), if any */
  private running: object | undefined;
  /** post-snapshot jobs received and not finished yet, by snapshot id (see requestSnapshot) */
  private postPending = new Map<string, Promise<void>>();

  constructor(
    private readonly link: Link<ToHost>,
    options: ParticipantOptions,
  ) {
    this.name = options.name;
    this.clock = options.clock ?? realClock;
    this.callbacks = options.callbacks ?? {};
    this.hold = options.hold ?? true;
    this.limitMs = options.freezeLimitMs ?? DEFAULT_FREEZE_LIMIT_MS;
    this.ready = new Promise((res, rej) => {
      this.resolveReady = res;
      this.rejectReady = rej;
    });
    this.ready.catch(() => {});
    this.lost = new Promise((res) => (this.resolveLost = res));
    // Until the host has registered us, nothing may pass: a snapshot could be running.
    void this.gate.freeze();
    link.listen({
      message: (m) => this.receive(m),
      close: (reason) => this.onLost(reason),
    });
    link.send({ t: 'hello', v: PROTOCOL_VERSION, name: this.name });
  }

  /** True while frozen for an attempt. */
  get frozen(): boolean {
    return this.current !== undefined;
  }

  /**
   * Ask the coordinator for a consistent snapshot of the whole set (from any participant).
   * Resolves after this participant's own post-snapshot work for it has run: the id is in
   * {@link snapshotsSeen} and the `postSnapshot` callback has returned. Called from inside a
   * thaw or post-snapshot callback, it does not wait for that work (it runs after the callback).
   */
  async requestSnapshot(name?: string): Promise<SetSnapshot> {
    // A callback running now may be the caller: its job must end before ours can run.
    const runningAtCall = this.running;
    const r = await this.request((req) => (name === undefined ? { t: 'snapshot', req } : { t: 'snapshot', req, name }));
    if (!r.snapshot) throw new StrataError('corrupt', 'The host answered a snapshot request without the snapshot.');
    // The host sends `post` before it answers, on the same ordered link, so the job for this
    // snapshot is queued by now (or done). It runs behind earlier thaw / post-snapshot work,
    // which can still be running when the answer is handled (a socket delivers thaw, post and
    // the answer in one chunk; a thaw callback may take its time): wait for it, and only for it.
    const post = this.postPending.get(r.snapshot.id);
    if (post && (runningAtCall === undefined || this.running !== runningAtCall)) await post;
    return r.snapshot;
  }

  /**
   * A volume of the group, written through the host. Its writes are not gated: use them inside
   * `gate.run(...)` (a transaction) or use {@link freezable}.
   */
  volume(name: string): WritableVolume {
    const info = this.volumes.find((v) => v.name === name);
    if (!info) throw new StrataError('not-found', `The group has no volume "${name}" (it has: ${this.volumes.map((v) => v.name).join(', ') || 'none yet; await participant.ready'}).`);
    const self = this;
    return {
      size: info.size,
      blockSize: info.blockSize,
      async read(offset, length) {
        return (await self.request((req) => ({ t: 'read', req, vol: name, offset, length }))).data ?? new Uint8Array(0);
      },
      async write(offset, data) {
        await self.request((req) => ({ t: 'write', req, vol: name, offset, data }));
      },
      async writeZeroes(offset, length) {
        await self.request((req) => ({ t: 'zero', req, vol: name, offset, length }));
      },
      async flush() {
        await self.request((req) => ({ t: 'flush', req, vol: name }));
      },
    };
  }

  /** {@link volume} with every write going through this participant's gate. */
  freezable(name: string): FreezableVolume {
    return new FreezableVolume(this.volume(name), this.gate);
  }

  /** Leave the group: thaw if frozen, tell the host, close the link. */
  close(): void {
    if (this.closed) return;
    this.link.send({ t: 'bye' });
    this.onLost('closed by the participant');
    this.link.close();
  }

  private request(make: (req: number) => ToHost): Promise<ToMember & { t: 'done' }> {
    if (this.closed) return Promise.reject(new StrataError('closed', `Participant "${this.name}" has left its group; join again.`));
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      this.link.send(make(req));
    });
  }

  private receive(raw: unknown): void {
    let m: ToMember;
    try {
      m = parseToMember(raw);
    } catch (e) {
      // A host that sends garbage cannot be trusted to thaw us: leave.
      this.onLost(e instanceof Error ? e.message : String(e));
      this.link.close();
      return;
    }
    switch (m.t) {
      case 'welcome':
        if (this.welcomed) return; // once: a second one must not open the gate
        this.welcomed = true;
        this.volumes = m.volumes;
        this.heartbeatMs = m.heartbeatMs;
        this.beat();
        this.gate.thaw();
        this.resolveReady();
        return;
      case 'prepare':
        void this.onPrepare(m.attempt);
        return;
      case 'freeze':
        if (this.preparing === m.attempt) this.preparing = undefined;
        void this.onFreeze(m.attempt, Math.min(m.limitMs, this.limitMs));
        return;
      case 'thaw': {
        const ctx: ThawContext = m.reason === undefined ? { attempt: m.attempt, taken: m.taken } : { attempt: m.attempt, taken: m.taken, reason: m.reason };
        const cur = this.current;
        if (cur && cur.attempt === m.attempt) this.finish(cur, ctx);
        else if (this.preparing === m.attempt) {
          // Abandoned before the freeze: nothing is held, but the app may undo its preparation.
          this.preparing = undefined;
          this.serial(() => this.callbacks.thaw?.(ctx));
        }
        return;
      }
      case 'post': {
        const id = m.snapshot;
        const done = this.serial(async () => {
          this.snapshotsSeen.push(id);
          await this.callbacks.postSnapshot?.(id, { attempt: m.attempt });
        });
        this.postPending.set(id, done);
        void done.then(() => {
          if (this.postPending.get(id) === done) this.postPending.delete(id);
        });
        return;
      }
      case 'done': {
        const p = this.pending.get(m.req);
        this.pending.delete(m.req);
        p?.resolve(m);
        return;
      }
      case 'fail': {
        const p = this.pending.get(m.req);
        this.pending.delete(m.req);
        p?.reject(new StrataError(m.code, m.message));
        return;
      }
      case 'beat':
        return;
    }
  }

  /**
   * Thaw and post-snapshot callbacks run one after another, in arrival order. Returns when this
   * one has run (it never rejects: a callback's error is the application's).
   */
  private serial(fn: () => Promise<void> | void): Promise<void> {
    const job = {};
    this.work = this.work
      .then(async () => {
        this.running = job;
        try {
          await fn();
        } finally {
          this.running = undefined;
        }
      })
      .catch(() => {});
    return this.work;
  }

  private async onPrepare(attempt: number): Promise<void> {
    if (this.closed) return;
    this.preparing = attempt;
    let answer: FreezeAnswer;
    try {
      answer = await this.callbacks.prepare?.({ attempt });
    } catch (e) {
      answer = { veto: e instanceof Error ? e.message : String(e) };
    }
    if (this.preparing !== attempt) return;
    if (answer && typeof answer === 'object' && typeof answer.veto === 'string') {
      this.preparing = undefined;
      this.link.send({ t: 'veto', attempt, reason: answer.veto.slice(0, 512) });
      return;
    }
    this.link.send({ t: 'prepared', attempt });
  }

  private async onFreeze(attempt: number, limitMs: number): Promise<void> {
    if (this.closed) return;
    if (this.current) this.finish(this.current, { attempt: this.current.attempt, taken: false, reason: 'superseded by a newer attempt' });
    const cur: Frozen = { attempt, notified: false, timer: undefined };
    this.current = cur;
    cur.timer = this.clock.setTimeout(() => {
      this.autoThaws++;
      this.finish(cur, { attempt, taken: false, reason: `no thaw from the coordinator within ${limitMs} ms` });
    }, limitMs);
    let answer: FreezeAnswer;
    try {
      // Closes the gate at once (synchronously); resolves when in-flight units are done.
      if (this.hold) await this.gate.freeze();
      if (this.current !== cur) return;
      cur.notified = true;
      answer = await this.callbacks.freeze?.({ attempt, limitMs });
    } catch (e) {
      answer = { veto: e instanceof Error ? e.message : String(e) };
    }
    if (this.current !== cur) return;
    if (answer && typeof answer === 'object' && typeof answer.veto === 'string') {
      this.link.send({ t: 'veto', attempt, reason: answer.veto.slice(0, 512) });
      this.finish(cur, { attempt, taken: false, reason: `vetoed: ${answer.veto}` });
      return;
    }
    this.link.send({ t: 'frozen', attempt });
  }

  /**
   * End a freeze: its state at once (a thaw cuts short a freeze still draining), then the thaw
   * callback and the release of held writes in callback order. The gate stays closed if a newer
   * freeze began meanwhile.
   */
  private finish(cur: Frozen, ctx: ThawContext): void {
    if (this.current !== cur) return;
    this.current = undefined;
    this.clock.clearTimeout(cur.timer);
    const notified = cur.notified;
    this.serial(async () => {
      try {
        if (notified) await this.callbacks.thaw?.(ctx);
      } finally {
        if (!this.current) this.gate.thaw();
      }
    });
  }

  private beat(): void {
    if (this.closed || this.heartbeatMs <= 0) return;
    this.beatTimer = this.clock.setTimeout(() => {
      this.link.send({ t: 'beat' });
      this.beat();
    }, this.heartbeatMs);
  }

  private onLost(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.clock.clearTimeout(this.beatTimer);
    const err = new StrataError('closed', `Participant "${this.name}" lost its group's host (${reason}).`);
    this.rejectReady(err);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    // Nobody is left to thaw us: thaw now rather than at the limit.
    if (this.current) this.finish(this.current, { attempt: this.current.attempt, taken: false, reason: `lost the host: ${reason}` });
    else this.gate.thaw();
    this.resolveLost(reason);
  }
}
