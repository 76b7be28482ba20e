/**
 * A small async readers-writer lock. Readers share; a writer waits for readers to drain and
 * then runs alone; waiting writers block new readers, so writes are not starved.
 * The uncontended paths do no allocation beyond the promise of the async call itself.
 */
export class RwLock {
  private readers = 0;
  private writer = false;
  private queue: { write: boolean; resume: () => void }[] = [];

  /** True when a reader could enter now without waiting (no writer holds the lock or waits for it). */
  get readable(): boolean {
    return !this.writer && this.queue.length === 0;
  }

  async read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.queue.length > 0) await new Promise<void>((resume) => this.queue.push({ write: false, resume }));
    else this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.wake();
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    if (this.writer || this.readers > 0 || this.queue.length > 0) await new Promise<void>((resume) => this.queue.push({ write: true, resume }));
    else this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.wake();
    }
  }

  private wake(): void {
    while (this.queue.length > 0 && !this.writer) {
      const next = this.queue[0]!;
      if (next.write) {
        if (this.readers > 0) return;
        this.queue.shift();
        this.writer = true;
        next.resume();
        return;
      }
      this.queue.shift();
      this.readers++;
      next.resume();
    }
  }
}
