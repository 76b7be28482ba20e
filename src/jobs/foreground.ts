/**
 * Foreground first: a block job gives way to the volume's own reads, writes and flushes.
 *
 * The volume counts the foreground operations it starts (`Volume.foregroundOps`; a job's own
 * reads go through `VolumeJobAccess.view` and are not counted). Between two batches of a job
 * the pacer looks at that counter. While it moves, the job works only a share of the wall-clock
 * time: a batch that took d ms is followed by a pause of d × (1 − share) / share. The share
 * halves after every batch during which the volume saw foreground I/O, down to `minShare`
 * (never lower, so a job under constant foreground load still finishes), and doubles after every
 * quiet batch, back to 1: full speed. A pause is slept in slices, and ends early once the
 * volume has been quiet for {@link IDLE_MS} (the counter counts operations started: one slow
 * flush must not look like an idle volume), so a job whose volume falls idle is not held back long.
 *
 * The idea is DRBD's resync controller, which drops to `c-min-rate` while the application does
 * I/O, expressed as a share of time rather than a rate so that it needs no knowledge of how fast
 * the store is. An explicit rate limit (bytes/s) replaces the pacer; `foreground: 'ignore'`
 * turns it off (e.g. to measure a job alone).
 */

/** How a job treats foreground I/O: 'yield' (default) paces it; 'ignore' runs at full speed. */
export type ForegroundPolicy = 'yield' | 'ignore';

/** The default floor of the share: a job under constant foreground load works 1/16 of the time. */
export const MIN_SHARE = 1 / 16;
/** Pauses are slept in slices of this many ms. */
export const PAUSE_SLICE_MS = 50;
/** A pause ends early once no foreground operation has started for this long. */
export const IDLE_MS = 250;
/** Pauses shorter than this are carried over to the next batch (a timer cannot sleep less). */
const MIN_PAUSE_MS = 1;

export interface PacerOptions {
  /** the lowest share of time the job keeps while foreground I/O goes on (default {@link MIN_SHARE}) */
  minShare?: number;
}

export class ForegroundPacer {
  private share = 1;
  /** the counter at the last batch's end, and at the last look (batch or pause slice) */
  private atBatch: number;
  private atLook: number;
  private workStart: number;
  private owed = 0;
  readonly minShare: number;

  /**
   * @param activity a counter that moves on every foreground operation
   * @param now the clock (ms)
   */
  constructor(
    private readonly activity: () => number,
    private readonly now: () => number,
    options: PacerOptions = {},
  ) {
    const min = options.minShare ?? MIN_SHARE;
    if (!(min > 0 && min <= 1)) throw new RangeError(`minShare must be in (0, 1], not ${min}`);
    this.minShare = min;
    this.atBatch = this.atLook = activity();
    this.workStart = now();
  }

  /** The share of time the job currently works: 1 = full speed. */
  get pace(): number {
    return this.share;
  }

  /** The job (re)starts working now: after a pause, a resume, or a change of rate limit. */
  startWork(): void {
    this.workStart = this.now();
  }

  /**
   * A batch just ended: adjust the share to the foreground I/O seen since the previous batch
   * ended (its pause included) and return how long to pause before the next batch (ms; 0 = go
   * on at once).
   */
  afterWork(): number {
    const worked = Math.max(0, this.now() - this.workStart);
    const c = this.activity();
    const moved = c !== this.atBatch;
    this.atBatch = this.atLook = c;
    if (moved) {
      this.share = Math.max(this.minShare, this.share / 2);
    } else {
      this.share = Math.min(1, this.share * 2);
      if (this.share === 1) this.owed = 0;
    }
    if (this.share === 1) return 0;
    this.owed += (worked * (1 - this.share)) / this.share;
    if (this.owed < MIN_PAUSE_MS) return 0;
    const pause = this.owed;
    this.owed = 0;
    return pause;
  }

  /** During a pause, after a slice: has foreground I/O happened since the last look (keep pausing)? */
  busy(): boolean {
    const c = this.activity();
    const moved = c !== this.atLook;
    this.atLook = c;
    return moved;
  }
}
