/**
 * Consistency groups of replication sessions, and freeze on failure (IBM's freeze/run).
 *
 * A manager holds sessions in named groups; a group can mix transports. When any session fails
 * to copy a write, the manager freezes every session of every group in the same turn of the
 * event loop, before any other write can be handed to any session: so no write after the
 * failing one reaches any secondary, and the secondaries together hold one point in time.
 * Primaries then go on (policy `run`: writes recorded in their out-of-sync bitmaps) or hold
 * their writes (policy `block`) until `resume`.
 *
 * Why that gives one point in time:
 * - Sync groups: a write is acknowledged only when its secondary has it durably, so anything an
 *   application wrote after seeing an acknowledgement (a dependent write) comes after something
 *   every secondary already holds. Freezing stops the rest.
 * - Async groups (writes acknowledged before the secondary has them): the manager puts a *cut*
 *   into the stream of every async session of every group at one instant, every `cutIntervalMs`
 *   (one JavaScript turn: no write is between two streams' cut markers). Secondaries hold what
 *   follows the last released cut; the manager releases cut k when every async secondary has
 *   received it. A failure freezes everyone before the next release, so each secondary drops
 *   what it holds: every async secondary of every group stops at the same cut.
 * - All sessions of one group share a mode. A manager with both sync and async groups keeps
 *   each kind at one point in time; across the two kinds the sync secondaries may hold writes
 *   made after the async ones' last released cut (a sync write cannot wait for a cut).
 * - Not covered: a secondary that crashes and loses data it had not flushed falls back to its
 *   last flush (a prefix of its own stream) while the others keep what they applied; in async
 *   groups that can be past the crashed one's point. Sync secondaries acknowledge only durable
 *   writes, so there a crash loses nothing acknowledged.
 */
import { StrataError } from '../errors.js';
import type { Link } from '../consistency/link.js';
import type { Mode } from './protocol.js';
import type { PrimarySession, SessionState, SessionStatus } from './primary.js';
import type { ToSecondary } from './protocol.js';

export interface ManagerOptions {
  /** async groups: how often a consistency cut is taken (default 100 ms) */
  cutIntervalMs?: number;
}

export type ManagerEvent =
  | { type: 'failed'; session: string; group: string; code: string; message: string }
  | { type: 'frozen'; reason: string; ms: number; sessions: number }
  | { type: 'state'; session: string; group: string; state: SessionState }
  | { type: 'progress'; session: string; group: string; done: number; total: number };

export interface GroupStatus {
  name: string;
  mode: Mode;
  sessions: SessionStatus[];
}

export interface ManagerStatus {
  /** frozen: a failure stopped replication; `resume` restarts it */
  frozen: boolean;
  /** consistency cuts of the async sessions (when more than one): last taken, last released */
  cut: number;
  released: number;
  freezeReason: string | null;
  groups: GroupStatus[];
}

interface Group {
  name: string;
  mode: Mode;
  sessions: PrimarySession[];
}

export class ReplicationManager {
  private groups = new Map<string, Group>();
  private listeners = new Set<(e: ManagerEvent) => void>();
  private timer: ReturnType<typeof setInterval> | null = null;
  frozen = false;
  freezeReason: string | null = null;
  /** the last freeze: when the failure was seen and when every session's freeze was durable */
  lastFreeze: { at: number; ms: number } | null = null;
  private readonly cutIntervalMs: number;

  constructor(options: ManagerOptions = {}) {
    this.cutIntervalMs = options.cutIntervalMs ?? 100;
  }

  on(listener: (e: ManagerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: ManagerEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /** Put `session` in group `group` (created on first use). A group's sessions share one mode. */
  add(session: PrimarySession, group = 'default'): void {
    let g = this.groups.get(group);
    if (!g) {
      g = { name: group, mode: session.mode, sessions: [] };
      this.groups.set(group, g);
    }
    if (g.mode !== session.mode) {
      throw new StrataError('invalid-argument', `Group ${group} replicates ${g.mode}hronously; session ${session.name} is ${session.mode}. A group's sessions share one mode (a mixed group could not stop at one point in time): use another group.`);
    }
    if (this.sessionGroup(session)) throw new StrataError('exists', `Session ${session.name} is already managed.`);
    if (session.state !== 'idle' && session.state !== 'frozen' && session.state !== 'refused') {
      throw new StrataError('invalid-argument', `Add session ${session.name} to its group before connecting it.`);
    }
    g.sessions.push(session);
    this.regate();
    const gname = group;
    session.hooks = {
      beforeConnect: (s) => {
        if (this.frozen) throw new StrataError('frozen', `Replication is frozen (${this.freezeReason}); session ${s.name} reconnects only when every session resumes (\`stratadisk replication resume\`, or ReplicationManager.resume).`);
      },
      onFailure: (s, e) => {
        this.emit({ type: 'failed', session: s.name, group: gname, code: e.code, message: e.message });
        void this.freezeAll(`session ${s.name} failed: ${e.message}`);
      },
      onCutReceived: () => this.maybeRelease(),
      onState: (s, state) => this.emit({ type: 'state', session: s.name, group: gname, state }),
      onProgress: (s, done, total) => this.emit({ type: 'progress', session: s.name, group: gname, done, total }),
    };
    this.startTimer();
  }

  /** Remove a session (it stays as it is; close it yourself). */
  remove(session: PrimarySession): void {
    const g = this.sessionGroup(session);
    if (!g) return;
    g.sessions = g.sessions.filter((s) => s !== session);
    session.hooks = {};
    if (g.sessions.length === 0) this.groups.delete(g.name);
    this.regate();
  }

  private sessionGroup(session: PrimarySession): Group | undefined {
    for (const g of this.groups.values()) if (g.sessions.includes(session)) return g;
    return undefined;
  }

  private cut = 0;
  private released = 0;

  private get asyncSessions(): PrimarySession[] {
    return this.sessions.filter((s) => s.mode === 'async');
  }

  /** When there are several async sessions, they apply only released cuts. */
  private regate(): void {
    const a = this.asyncSessions;
    for (const s of a) s.gated = a.length > 1;
  }

  get sessions(): PrimarySession[] {
    return [...this.groups.values()].flatMap((g) => g.sessions);
  }

  /**
   * Freeze every session of every group now (the synchronous part stops every stream before this
   * returns its promise); resolves when every freeze is durable, with the time it took.
   */
  freezeAll(reason: string): Promise<number> {
    const t0 = performance.now();
    if (!this.frozen) {
      this.frozen = true;
      this.freezeReason = reason;
    }
    const all = this.sessions.map((s) => s.freeze(reason, this.released).catch(() => {}));
    return Promise.all(all).then(() => {
      const ms = performance.now() - t0;
      this.lastFreeze = { at: t0, ms };
      this.emit({ type: 'frozen', reason, ms, sessions: all.length });
      return ms;
    });
  }

  /**
   * Reconnect every session that is not streaming, each over a new link from `connect` (called
   * with the session), and resynchronise. Resolves when all are streaming again (resync in the
   * background: `synced()` on each, or watch the events); rejects with the first refusal,
   * leaving the others as they are (streaming ones go on; the manager stays frozen for none).
   */
  async resume(connect: (session: PrimarySession) => Promise<Link<ToSecondary>>): Promise<void> {
    this.frozen = false;
    this.freezeReason = null;
    // a reconnected secondary starts from the next cut taken
    this.released = this.cut;
    const todo = this.sessions.filter((s) => s.state !== 'syncing' && s.state !== 'replicating' && s.state !== 'connecting' && s.state !== 'closed');
    const results = await Promise.allSettled(todo.map(async (s) => s.connect(await connect(s))));
    const bad = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (bad) {
      // one could not come back: everyone stays frozen (the others stop again), so no group runs half
      await this.freezeAll(`resume failed: ${(bad.reason as Error)?.message ?? bad.reason}`);
      throw bad.reason;
    }
  }

  /** Resolves when every session has finished its resync. */
  async synced(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.synced()));
  }

  private startTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.takeCuts(), this.cutIntervalMs);
    (this.timer as { unref?: () => void }).unref?.();
  }

  /** One instant: a cut marker into the stream of every async session (when there are several). */
  takeCuts(): void {
    if (this.frozen) return;
    const a = this.asyncSessions;
    if (a.length < 2) return;
    // only while every one streams: a member that does not would leave the cut incomplete
    if (!a.every((s) => s.state === 'syncing' || s.state === 'replicating')) return;
    // at most a few cuts outstanding: a slow secondary must not pile them up
    if (this.cut - this.released >= 8) return;
    // nothing written since the last cut: nothing to cut
    if (!a.some((s) => s.sentSinceCut)) return;
    this.cut++;
    for (const s of a) s.sendCut(this.cut);
  }

  private maybeRelease(): void {
    if (this.frozen) return;
    let min = Number.MAX_SAFE_INTEGER;
    const a = this.asyncSessions;
    for (const s of a) min = Math.min(min, s.cutReceived);
    if (min <= this.released) return;
    this.released = min;
    for (const s of a) s.releaseCut(min);
  }

  status(): ManagerStatus {
    return {
      frozen: this.frozen,
      freezeReason: this.freezeReason,
      cut: this.cut,
      released: this.released,
      groups: [...this.groups.values()].map((g) => ({ name: g.name, mode: g.mode, sessions: g.sessions.map((s) => s.status()) })),
    };
  }

  /** Stop taking cuts and close every session (each ends in order, see PrimarySession.close). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all(this.sessions.map((s) => s.close()));
    this.groups.clear();
  }
}
