import { formatBytes } from './size.js';
import type { TextSink } from './io.js';

/** Redraw at most this often: a terminal repaint per 8 MiB batch would dominate a fast copy. */
const REDRAW_MS = 100;
const BAR_WIDTH = 24;

/**
 * A one-line progress bar on stderr: label, bar, percentage, bytes done of total, rate.
 * Draws nothing at all when disabled (stderr is not a terminal), so logs and pipes stay clean.
 */
export class Progress {
  private readonly started: number;
  private lastDraw = 0;
  private drawn = false;
  private done = 0;

  constructor(
    private readonly sink: TextSink,
    private readonly label: string,
    private readonly total: number,
    private readonly enabled: boolean,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  /** The last figure given to `update` (drawn or not). */
  get completed(): number {
    return this.done;
  }

  /** Record that `done` bytes of `total` are finished; redraws if enough time passed. */
  update(done: number): void {
    this.done = done;
    if (!this.enabled) return;
    const t = this.now();
    if (this.drawn && t - this.lastDraw < REDRAW_MS && done < this.total) return;
    this.lastDraw = t;
    this.draw(t);
  }

  /** Erase the bar (the command prints its own result line afterwards). */
  finish(): void {
    if (!this.enabled || !this.drawn) return;
    this.sink.write('\r\x1b[2K');
    this.drawn = false;
  }

  /** The text of the bar, without control characters (exported for tests). */
  render(t = this.now()): string {
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const filled = Math.round(frac * BAR_WIDTH);
    const secs = Math.max((t - this.started) / 1000, 1e-3);
    const rate = this.done / secs;
    return `${this.label} [${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${formatBytes(this.done)} / ${formatBytes(this.total)} ${formatBytes(Math.round(rate))}/s`;
  }

  private draw(t: number): void {
    this.sink.write(`\r\x1b[2K${this.render(t)}`);
    this.drawn = true;
  }
}
