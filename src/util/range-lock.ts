/**
 * A FIFO range lock over block numbers: shared and exclusive holds of [start, end), granted in
 * the order they were asked for among those that conflict (two holds conflict when their ranges
 * overlap and at least one is exclusive). A hold never overtakes an earlier conflicting one,
 * held or waiting, so a read asked for after a write of the same blocks sees that write, and a
 * write waits for the reads of its blocks asked for before it. Holds that do not conflict run
 * at once, whatever waits elsewhere. `all` is the range of every block (structure changes such
 * as a snapshot take it exclusively and so wait for every I/O in flight).
 *
 * The uncontended path allocates one small record and no promise. Entries are kept in arrival
 * order in an array: the number in flight is what a client keeps in flight (a queue depth), so
 * scanning it is cheaper than any tree.
 */

interface Hold {
  start: number;
  end: number;
  exclusive: boolean;
  granted: boolean;
  resume: (() => void) | null;
}

/** Every block: a hold of this range conflicts with every other hold. */
export const ALL_BLOCKS: readonly [number, number] = [0, Number.MAX_SAFE_INTEGER];

export class RangeLock {
  private holds: Hold[] = [];

  /** Holds granted or waiting. */
  get size(): number {
    return this.holds.length;
  }

  /** Could a shared hold of [start, end) be granted now, without waiting? */
  sharable(start: number, end: number): boolean {
    for (const h of this.holds) if (h.exclusive && h.start < end && start < h.end) return false;
    return true;
  }

  /**
   * Ask for a hold; returns the release function, at once when granted (no promise), else a
   * promise of it. Call the release function exactly once.
   */
  acquire(start: number, end: number, exclusive: boolean): (() => void) | Promise<() => void> {
    const hold: Hold = { start, end, exclusive, granted: false, resume: null };
    const free = !this.conflictsBefore(hold, this.holds.length);
    this.holds.push(hold);
    const release = () => this.release(hold);
    if (free) {
      hold.granted = true;
      return release;
    }
    return new Promise<() => void>((resolve) => {
      hold.resume = () => resolve(release);
    });
  }

  /** Run `fn` under a hold of [start, end). */
  async run<T>(start: number, end: number, exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    const got = this.acquire(start, end, exclusive);
    const release = typeof got === 'function' ? got : await got;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Does any hold before position `upTo` conflict with `hold`? */
  private conflictsBefore(hold: Hold, upTo: number): boolean {
    for (let i = 0; i < upTo; i++) {
      const h = this.holds[i]!;
      if ((h.exclusive || hold.exclusive) && h.start < hold.end && hold.start < h.end) return true;
    }
    return false;
  }

  private release(hold: Hold): void {
    const i = this.holds.indexOf(hold);
    if (i < 0) throw new Error('RangeLock: a hold was released twice');
    this.holds.splice(i, 1);
    // grant every waiting hold that no earlier hold blocks any more
    for (let j = i; j < this.holds.length; j++) {
      const h = this.holds[j]!;
      if (h.granted || !h.resume) continue;
      if (h.start >= hold.end || hold.start >= h.end) continue; // this release changed nothing for it
      if (this.conflictsBefore(h, j)) continue;
      h.granted = true;
      const resume = h.resume;
      h.resume = null;
      resume();
    }
  }
}
