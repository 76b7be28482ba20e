import { StrataError, type ErrorCode } from '../errors.js';
import { ForegroundPacer, IDLE_MS, PAUSE_SLICE_MS, type ForegroundPolicy } from './foreground.js';

/**
 * A long-running block job (commit, consolidation, stream, mirror, export...): an id, a kind,
 * progress in bytes, pause/resume/cancel and a rate limit. Every job in stratadisk implements
 * this interface, usually by extending `BaseJob`; a new job is one new file in `src/jobs/`.
 */
export type JobState = 'running' | 'paused' | 'completed' | 'cancelled' | 'failed';

export interface JobProgress {
  /** bytes finished */
  done: number;
  /** bytes the job expects to handle in all (may grow while the job runs) */
  total: number;
  /** bytes per second over the last few seconds */
  rate: number;
}

export interface JobInfo {
  id: string;
  kind: string;
  state: JobState;
  progress: JobProgress;
  /** bytes per second, or undefined when unlimited */
  rateLimit: number | undefined;
  /**
   * While the job yields to foreground I/O (no rate limit, `foreground: 'yield'`): the share of
   * time it currently works, 1 = full speed, lower while the volume is read or written.
   */
  pace?: number;
  error?: { code: ErrorCode; message: string };
}

export type JobEvent =
  | { type: 'progress'; info: JobInfo }
  | { type: 'state'; info: JobInfo };

export interface Job {
  readonly id: string;
  readonly kind: string;
  readonly state: JobState;
  info(): JobInfo;
  pause(): void;
  resume(): void;
  /** Stop at the next safe point; `done` rejects with code `aborted`. */
  cancel(): void;
  /** Bytes per second; undefined or 0 removes the limit. */
  setRateLimit(bytesPerSecond: number | undefined): void;
  /** Listen to progress (at most every `PROGRESS_MS`) and state changes; returns an unsubscribe. */
  on(listener: (event: JobEvent) => void): () => void;
  /** Settles when the job ends: resolves on completion, rejects with a StrataError otherwise. */
  readonly done: Promise<void>;
}

/** Progress events are emitted at most this often (and always at the end). */
export const PROGRESS_MS = 100;
/** The window over which `rate` is measured. */
const RATE_WINDOW_MS = 3000;

let counter = 0;
/** A short unique id: time + counter + randomness, safe as a store name. */
export function newJobId(kind: string): string {
  const rand = Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, '0');
  return `${kind}-${Date.now().toString(36)}-${(counter++).toString(36)}${rand}`;
}

export interface JobOptions {
  id?: string;
  rateLimit?: number;
  /** aborting this signal cancels the job (e.g. the CLI's Ctrl-C) */
  signal?: AbortSignal;
  /** clock, for tests */
  now?: () => number;
  /**
   * 'yield' (default): while the volume is read, written or flushed, the job slows down to leave
   * it most of the time, and runs at full speed when it is idle (see foreground.ts).
   * 'ignore': always full speed. An explicit `rateLimit` takes precedence over both.
   */
  foreground?: ForegroundPolicy;
  /** with 'yield': the lowest share of time the job keeps under foreground load (default 1/16) */
  minShare?: number;
}

/**
 * The shared machinery: state, listeners, throttled progress, pause, cancel, a token-bucket
 * rate limit and yielding to foreground I/O. Subclasses implement `run()` and call
 * `await this.step(bytes)` after each unit of work: `step` records progress, sleeps as the rate
 * limit (or, without one, the foreground pacer) requires, waits while paused and throws
 * `aborted` once cancelled. A job on a volume calls `yieldTo(counter)` in its constructor with
 * the volume's foreground counter. Call `start()` once the subclass is constructed.
 */
export abstract class BaseJob implements Job {
  readonly id: string;
  readonly kind: string;
  private _state: JobState = 'running';
  private _done = 0;
  private _total = 0;
  private _rateLimit: number | undefined;
  private _error: StrataError | undefined;
  private readonly listeners = new Set<(event: JobEvent) => void>();
  private lastEmit = -Infinity;
  private readonly samples: { t: number; done: number }[] = [];
  private resumeWaiters: (() => void)[] = [];
  /** rate-limit sleeps: cut short by cancel (not by resume, which would skip the limit) */
  private sleepers: (() => void)[] = [];
  private cancelled = false;
  private budgetStart = 0;
  private budgetBytes = 0;
  protected readonly now: () => number;
  private _promise: Promise<void> | undefined;
  private readonly signal: AbortSignal | undefined;
  private readonly foreground: ForegroundPolicy;
  private readonly minShare: number | undefined;
  private pacer: ForegroundPacer | null = null;

  constructor(kind: string, options: JobOptions = {}) {
    this.kind = kind;
    this.id = options.id ?? newJobId(kind);
    this._rateLimit = options.rateLimit || undefined;
    this.now = options.now ?? (() => performance.now());
    this.signal = options.signal;
    this.foreground = options.foreground ?? 'yield';
    if (this.foreground !== 'yield' && this.foreground !== 'ignore') {
      throw new StrataError('invalid-argument', `foreground must be 'yield' or 'ignore', not ${JSON.stringify(this.foreground)}.`);
    }
    this.minShare = options.minShare;
    if (this.minShare !== undefined && !(this.minShare > 0 && this.minShare <= 1)) {
      throw new StrataError('invalid-argument', `minShare must be a share of time above 0 and at most 1, not ${this.minShare}.`);
    }
  }

  /**
   * Yield to the foreground I/O that `activity` counts (a volume's `foregroundOps`), unless the
   * job was started with `foreground: 'ignore'`. Call it in the constructor.
   */
  protected yieldTo(activity: () => number): void {
    if (this.foreground === 'yield') this.pacer = new ForegroundPacer(activity, this.now, { minShare: this.minShare });
  }

  /** Begin running; idempotent. Subclasses call it at the end of their own set-up. */
  start(): this {
    if (this._promise) return this;
    this.signal?.addEventListener('abort', () => this.cancel(), { once: true });
    if (this.signal?.aborted) this.cancelled = true;
    this.budgetStart = this.now();
    this.pacer?.startWork();
    this._promise = (async () => {
      try {
        await this.run();
        this.setState('completed');
      } catch (e) {
        const err = e instanceof StrataError ? e : new StrataError('io', `The ${this.kind} job failed: ${(e as Error)?.message ?? e}`, { cause: e });
        this._error = err;
        this.setState(err.code === 'aborted' ? 'cancelled' : 'failed');
        throw err;
      } finally {
        this.emitProgress(true);
      }
    })();
    this._promise.catch(() => {}); // observed through `done`
    return this;
  }

  get done(): Promise<void> {
    if (!this._promise) throw new StrataError('invalid-argument', `The ${this.kind} job was never started; call start().`);
    return this._promise;
  }

  get state(): JobState {
    return this._state;
  }

  info(): JobInfo {
    const info: JobInfo = {
      id: this.id,
      kind: this.kind,
      state: this._state,
      progress: { done: this._done, total: Math.max(this._total, this._done), rate: this.rate() },
      rateLimit: this._rateLimit,
    };
    if (this.pacer && !this._rateLimit) info.pace = this.pacer.pace;
    if (this._error) info.error = { code: this._error.code, message: this._error.message };
    return info;
  }

  pause(): void {
    if (this._state === 'running') this.setState('paused');
  }

  resume(): void {
    if (this._state !== 'paused') return;
    this.setState('running');
    this.budgetStart = this.now();
    this.budgetBytes = 0;
    this.pacer?.startWork();
    const w = this.resumeWaiters;
    this.resumeWaiters = [];
    for (const f of w) f();
  }

  cancel(): void {
    if (this._state === 'completed' || this._state === 'failed' || this._state === 'cancelled') return;
    this.cancelled = true;
    const w = [...this.resumeWaiters, ...this.sleepers];
    this.resumeWaiters = [];
    this.sleepers = [];
    for (const f of w) f();
  }

  setRateLimit(bytesPerSecond: number | undefined): void {
    this._rateLimit = bytesPerSecond || undefined;
    this.budgetStart = this.now();
    this.budgetBytes = 0;
    this.pacer?.startWork();
    this.emitProgress(true);
  }

  on(listener: (event: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The job's work. Call `step` regularly; throw StrataError on failure. */
  protected abstract run(): Promise<void>;

  /** Set (or grow) the expected total in bytes. */
  protected setTotal(bytes: number): void {
    this._total = bytes;
  }

  /** Set progress directly (e.g. when resuming an interrupted job). */
  protected setDone(bytes: number): void {
    this._done = bytes;
  }

  /** Throw `aborted` if cancelled; wait while paused. Cheap enough to call per batch. */
  protected async checkpoint(): Promise<void> {
    while (true) {
      if (this.cancelled) throw new StrataError('aborted', `The ${this.kind} job ${this.id} was cancelled.`);
      if (this._state !== 'paused') return;
      await new Promise<void>((r) => this.resumeWaiters.push(r));
    }
  }

  /** Record `bytes` more done, emit progress, honour the rate limit (or yield to foreground I/O), pause and cancel. */
  protected async step(bytes: number): Promise<void> {
    this._done += bytes;
    const limit = this._rateLimit;
    // measured before the checkpoint: time spent paused by the user is not work
    const pause = !limit && this.pacer ? this.pacer.afterWork() : 0;
    this.emitProgress(false);
    await this.checkpoint();
    if (limit) {
      this.budgetBytes += bytes;
      const due = this.budgetStart + (this.budgetBytes / limit) * 1000;
      const wait = due - this.now();
      if (wait > 1) await this.sleep(wait);
      await this.checkpoint();
    } else if (pause > 0) {
      await this.yieldForeground(pause);
    }
    this.pacer?.startWork();
  }

  /** Sleep `ms` in slices; IDLE_MS without foreground I/O (or a rate limit set meanwhile) ends it early. */
  private async yieldForeground(ms: number): Promise<void> {
    const pacer = this.pacer!;
    let quiet = 0;
    for (let left = ms; left > 0; ) {
      const slice = Math.min(left, PAUSE_SLICE_MS);
      await this.sleep(slice);
      await this.checkpoint();
      left -= slice;
      quiet = pacer.busy() ? 0 : quiet + slice;
      if (this._rateLimit || quiet >= IDLE_MS) return;
    }
  }

  /** Sleep, woken early by cancel. */
  protected sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      let t: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(t);
        this.sleepers = this.sleepers.filter((f) => f !== done);
        resolve();
      };
      t = setTimeout(done, ms);
      this.sleepers.push(done);
    });
  }

  private rate(): number {
    const s = this.samples;
    if (s.length < 2) return 0;
    const a = s[0]!;
    const b = s[s.length - 1]!;
    return b.t > a.t ? ((b.done - a.done) / (b.t - a.t)) * 1000 : 0;
  }

  private emitProgress(force: boolean): void {
    const t = this.now();
    if (!force && t - this.lastEmit < PROGRESS_MS) return;
    this.lastEmit = t;
    this.samples.push({ t, done: this._done });
    while (this.samples.length > 2 && t - this.samples[0]!.t > RATE_WINDOW_MS) this.samples.shift();
    this.emit({ type: 'progress', info: this.info() });
  }

  private setState(state: JobState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit({ type: 'state', info: this.info() });
  }

  private emit(event: JobEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        // a listener's failure is not the job's
      }
    }
  }
}
