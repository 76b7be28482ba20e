/**
 * The coordinator's state machine, independent of any transport. One attempt at a time:
 *
 * ```
 * idle ─snapshot()→ preparing ─all prepared→ freezing ─all frozen→ snapshotting ─all taken→ thaw + post-snapshot → idle
 *                        │ veto / member gone / timeout      │ freeze limit / a volume fails / member gone
 *                        └────────→ aborted: thaw everyone, delete what was taken ←┘
 * ```
 *
 * As in Windows VSS, `prepare` lets participants get ready (and veto) while still writing, so
 * the freeze itself stays short. Limits as VSS has them: every participant must acknowledge the
 * prepare, then the freeze, each within `freezeTimeoutMs` (default 10 s), and no participant
 * stays frozen longer than `freezeLimitMs` (default 60 s, counted from sending the freeze).
 * Participants run their own timer of the same limit, so a coordinator that dies leaves no one
 * frozen past it.
 */
import { StrataError, isStrataError, type ErrorCode } from '../errors.js';
import { SNAPSHOT_NAME } from '../format/manifest.js';
import { realClock, type Clock, type TimerHandle } from './link.js';
import type { SetSnapshot, ToMember } from './protocol.js';

export const DEFAULT_FREEZE_TIMEOUT_MS = 10_000;
export const DEFAULT_FREEZE_LIMIT_MS = 60_000;

/** What the coordinator snapshots: {@link Volume}, a RemoteVolume, anything with these two. */
export interface SnapshotTarget {
  snapshot(name: string): Promise<unknown>;
  deleteSnapshot(name: string): Promise<void>;
}

/** A registered participant as the coordinator sees it: a name and a way to send it messages. */
export interface ParticipantHandle {
  readonly name: string;
  send(msg: ToMember): void;
}

export interface CoordinatorOptions {
  /** a participant must acknowledge the freeze within this (default 10 s) */
  freezeTimeoutMs?: number;
  /** nobody stays frozen longer than this, counted from the freeze (default 60 s) */
  freezeLimitMs?: number;
  clock?: Clock;
  /**
   * Runs once per volume after every snapshot of the set is taken, while every writer is still
   * frozen (before the thaw): for work that must land at the snapshot's instant, such as a
   * transaction mark in the volume's write log (the CLI's serve-group registers one for each
   * journaled volume). A hook that fails aborts the attempt like a failed volume snapshot: the
   * set's snapshots are deleted and everyone thaws.
   */
  onSnapshot?: (volume: string, snapshot: string) => Promise<void>;
}

export type AttemptState = 'preparing' | 'freezing' | 'snapshotting' | 'done' | 'aborted';

/** Events for observers (tests, a UI). */
export interface CoordinatorEvent {
  attempt: number;
  state: AttemptState;
  /** for `aborted`: the error code and message */
  code?: ErrorCode;
  reason?: string;
}

interface Attempt {
  id: number;
  name: string;
  state: AttemptState;
  members: Set<ParticipantHandle>;
  /** who acknowledged the current phase (prepared, then frozen) */
  frozen: Set<ParticipantHandle>;
  startedAt: number;
  timeoutTimer?: TimerHandle;
  limitTimer?: TimerHandle;
  resolve(s: SetSnapshot): void;
  reject(e: StrataError): void;
  /** resolves when everything of the attempt is over (including deleting partial snapshots) */
  finished: Promise<void>;
  finish(): void;
}

export class Coordinator {
  private readonly members = new Set<ParticipantHandle>();
  private readonly targets: [string, SnapshotTarget][];
  private readonly clock: Clock;
  private readonly onSnapshot: CoordinatorOptions['onSnapshot'];
  readonly freezeTimeoutMs: number;
  readonly freezeLimitMs: number;
  private current: Attempt | undefined;
  private queue: Promise<void> = Promise.resolve();
  private nextAttempt = 1;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Called on every state change of an attempt. */
  onEvent: ((e: CoordinatorEvent) => void) | undefined;

  constructor(volumes: Record<string, SnapshotTarget> | Map<string, SnapshotTarget>, options: CoordinatorOptions = {}) {
    this.targets = volumes instanceof Map ? [...volumes] : Object.entries(volumes);
    this.clock = options.clock ?? realClock;
    this.onSnapshot = options.onSnapshot;
    this.freezeTimeoutMs = options.freezeTimeoutMs ?? DEFAULT_FREEZE_TIMEOUT_MS;
    this.freezeLimitMs = options.freezeLimitMs ?? DEFAULT_FREEZE_LIMIT_MS;
    if (!(this.freezeTimeoutMs > 0 && this.freezeLimitMs > 0)) throw new StrataError('invalid-argument', 'freezeTimeoutMs and freezeLimitMs must be positive.');
  }

  /** Names of the registered participants. */
  get participants(): string[] {
    return [...this.members].map((m) => m.name);
  }

  /** True while an attempt is running. */
  get busy(): boolean {
    return this.current !== undefined;
  }

  /** Resolves when no attempt is running (at once if none is). */
  whenIdle(): Promise<void> {
    if (!this.current) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /**
   * Register a participant. It takes part in attempts that start after this; a host should not
   * let a member write before it is registered (see GroupHost, which delays the welcome while an
   * attempt runs).
   */
  join(p: ParticipantHandle): void {
    if (this.closed) throw new StrataError('closed', 'The coordinator is closed.');
    this.members.add(p);
  }

  /** A participant left or died: an attempt that counts on it is aborted. */
  leave(p: ParticipantHandle, reason: string): void {
    this.members.delete(p);
    const a = this.current;
    if (!a || !a.members.has(p)) return;
    a.members.delete(p);
    a.frozen.delete(p);
    if (running(a)) {
      this.abort(a, 'aborted', `Participant "${p.name}" went away during the snapshot (${reason}); try again.`);
    }
  }

  /** A participant is ready for the freeze of `attempt`. */
  prepared(p: ParticipantHandle, attempt: number): void {
    const a = this.current;
    if (!a || a.id !== attempt || a.state !== 'preparing' || !a.members.has(p)) return;
    a.frozen.add(p);
    if (a.frozen.size === a.members.size) this.freeze(a);
  }

  /** A participant acknowledged the freeze of `attempt`. */
  frozen(p: ParticipantHandle, attempt: number): void {
    const a = this.current;
    if (!a || a.id !== attempt || a.state !== 'freezing' || !a.members.has(p)) return;
    a.frozen.add(p);
    if (a.frozen.size === a.members.size) void this.takeSnapshots(a);
  }

  /** A participant refused `attempt`. */
  veto(p: ParticipantHandle, attempt: number, reason: string): void {
    const a = this.current;
    if (!a || a.id !== attempt || !a.members.has(p) || !running(a)) return;
    this.abort(a, 'aborted', `Participant "${p.name}" vetoed the snapshot: ${reason}`);
  }

  /**
   * Freeze every participant, snapshot every volume of the set under one name, thaw, and tell
   * each participant the snapshot's id. Attempts run one at a time (later calls wait their turn).
   * Fails with `aborted` (veto, a participant gone, a volume failed) or `timeout` (a limit
   * passed); nothing of a failed attempt remains and every participant is thawed.
   */
  snapshot(options: { name?: string } = {}): Promise<SetSnapshot> {
    if (this.closed) return Promise.reject(new StrataError('closed', 'The coordinator is closed.'));
    if (options.name !== undefined && !SNAPSHOT_NAME.test(options.name)) {
      return Promise.reject(new StrataError('invalid-argument', `Snapshot name "${options.name}" is not allowed: use letters, digits and . _ + : - (up to 128).`));
    }
    const result = this.queue.then(() => this.start(options.name));
    this.queue = result.then(
      () => this.lastFinished,
      () => this.lastFinished,
    );
    return result;
  }

  private lastFinished: Promise<void> = Promise.resolve();

  private start(name: string | undefined): Promise<SetSnapshot> {
    if (this.closed) return Promise.reject(new StrataError('closed', 'The coordinator is closed.'));
    const id = this.nextAttempt++;
    return new Promise<SetSnapshot>((resolve, reject) => {
      let finish!: () => void;
      const finished = new Promise<void>((r) => (finish = r));
      const a: Attempt = {
        id,
        name: name ?? defaultName(id),
        state: 'preparing',
        members: new Set(this.members),
        frozen: new Set(),
        startedAt: this.clock.now(),
        resolve,
        reject,
        finished,
        finish,
      };
      this.current = a;
      this.lastFinished = finished;
      this.emit(a);
      this.phaseTimer(a, 'get ready for the freeze');
      for (const m of a.members) m.send({ t: 'prepare', attempt: id });
      if (a.members.size === 0) this.freeze(a);
    });
  }

  /** Abort `a` unless every participant acknowledges the current phase within freezeTimeoutMs. */
  private phaseTimer(a: Attempt, what: string): void {
    this.clock.clearTimeout(a.timeoutTimer);
    a.timeoutTimer = this.clock.setTimeout(() => {
      const late = [...a.members].filter((m) => !a.frozen.has(m)).map((m) => `"${m.name}"`);
      this.abort(a, 'timeout', `Participant(s) ${late.join(', ')} did not ${what} within ${this.freezeTimeoutMs} ms; the snapshot was abandoned and everyone thawed.`);
    }, this.freezeTimeoutMs);
  }

  private freeze(a: Attempt): void {
    a.state = 'freezing';
    a.frozen.clear();
    a.startedAt = this.clock.now();
    this.emit(a);
    this.phaseTimer(a, 'freeze');
    a.limitTimer = this.clock.setTimeout(() => {
      this.abort(a, 'timeout', `The freeze lasted longer than its limit of ${this.freezeLimitMs} ms; the snapshot was abandoned and everyone thawed.`);
    }, this.freezeLimitMs);
    const freeze: ToMember = { t: 'freeze', attempt: a.id, limitMs: this.freezeLimitMs };
    for (const m of a.members) m.send(freeze);
    if (a.members.size === 0) void this.takeSnapshots(a);
  }

  private async takeSnapshots(a: Attempt): Promise<void> {
    this.clock.clearTimeout(a.timeoutTimer);
    a.state = 'snapshotting';
    this.emit(a);
    // Every writer is frozen, so the snapshots are of one instant whatever their order: take them all at once.
    const results = await Promise.allSettled(this.targets.map(([, t]) => t.snapshot(a.name)));
    const taken = this.targets.filter((_, i) => results[i]!.status === 'fulfilled');
    const failed = results.findIndex((r) => r.status === 'rejected');
    if (a.state === 'snapshotting' && failed >= 0) {
      const e = (results[failed] as PromiseRejectedResult).reason;
      const code: ErrorCode = isStrataError(e) ? e.code : 'io';
      this.abort(a, code, `Snapshotting volume "${this.targets[failed]![0]}" failed (${e instanceof Error ? e.message : String(e)}); the snapshots of the other volumes were deleted.`);
    }
    const hook = this.onSnapshot;
    if (a.state === 'snapshotting' && hook) {
      // still frozen: what the hook does lands at the snapshot's instant
      const done = await Promise.allSettled(this.targets.map(([n]) => hook(n, a.name)));
      const bad = done.findIndex((r) => r.status === 'rejected');
      if (a.state === 'snapshotting' && bad >= 0) {
        const e = (done[bad] as PromiseRejectedResult).reason;
        const code: ErrorCode = isStrataError(e) ? e.code : 'io';
        this.abort(a, code, `After snapshotting volume "${this.targets[bad]![0]}", its snapshot hook failed (${e instanceof Error ? e.message : String(e)}); the snapshots of the set were deleted.`);
      }
    }
    if (a.state !== 'snapshotting') {
      // Aborted meanwhile (limit, veto, a participant died) or failed: leave nothing behind.
      await Promise.allSettled(taken.map(([, t]) => t.deleteSnapshot(a.name)));
      this.end(a);
      return;
    }
    this.clock.clearTimeout(a.limitTimer);
    a.state = 'done';
    const frozenMs = Math.round(this.clock.now() - a.startedAt);
    for (const m of a.members) m.send({ t: 'thaw', attempt: a.id, taken: true });
    for (const m of a.members) m.send({ t: 'post', attempt: a.id, snapshot: a.name });
    this.emit(a);
    a.resolve({ id: a.name, volumes: this.targets.map(([n]) => n), participants: a.members.size, frozenMs });
    this.end(a);
  }

  private abort(a: Attempt, code: ErrorCode, reason: string): void {
    if (!running(a)) return;
    const wasSnapshotting = a.state === 'snapshotting';
    a.state = 'aborted';
    this.clock.clearTimeout(a.timeoutTimer);
    this.clock.clearTimeout(a.limitTimer);
    for (const m of a.members) m.send({ t: 'thaw', attempt: a.id, taken: false, reason });
    this.emit(a, code, reason);
    a.reject(new StrataError(code, reason));
    // While snapshotting, takeSnapshots deletes what was taken and ends the attempt.
    if (!wasSnapshotting) this.end(a);
  }

  private end(a: Attempt): void {
    if (this.current === a) this.current = undefined;
    a.finish();
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const r of w) r();
  }

  private emit(a: Attempt, code?: ErrorCode, reason?: string): void {
    const e: CoordinatorEvent = { attempt: a.id, state: a.state };
    if (code) e.code = code;
    if (reason) e.reason = reason;
    this.onEvent?.(e);
  }

  /** Abort a running attempt (everyone thawed) and refuse new ones. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.current) this.abort(this.current, 'closed', 'The coordinator was closed during the snapshot.');
    this.members.clear();
  }
}

function running(a: Attempt): boolean {
  return a.state === 'preparing' || a.state === 'freezing' || a.state === 'snapshotting';
}

/** A name that sorts by time and is unique within a coordinator's life: `cg-<utc>-<attempt>`. */
function defaultName(attempt: number): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace('.', '');
  return `cg-${t}-${attempt}`;
}
