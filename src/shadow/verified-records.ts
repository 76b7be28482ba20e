/**
 * Verify-on-read for a diff area. Every batch record carries the XXH3-64 of its data
 * (diff-area.ts); a read from the area is served only once the whole record it falls in has
 * matched that hash. Why per record, once: the hash covers the record (up to 16 MiB), not a
 * block, so checking it on every 4 KiB read would hash up to 16 MiB each time; and a record
 * never changes once written (the log is append-only), so one match per open handle is enough
 * to never serve bytes that differ from what was preserved when they were read from the store.
 * A mismatch is remembered: every later read of that record fails the same way.
 */
import { StrataError } from '../errors.js';

/** Verifies one record: [at: record start, dataAt, end). Rejects 'checksum-mismatch' (or any other error). */
export type VerifyRecord = (at: number, dataAt: number, end: number) => Promise<void>;

export class VerifiedRecords {
  /** records sorted by position: start, data start, end */
  #at: number[] = [];
  #dataAt: number[] = [];
  #end: number[] = [];
  /** true: verified; a promise: being verified, or failed with a mismatch */
  #state: (true | Promise<void> | undefined)[] = [];

  /** Records known. */
  get count(): number {
    return this.#at.length;
  }

  /** A record whose data lies at [dataAt, end) (the log's order; a record known already is ignored). */
  add(at: number, dataAt: number, end: number): void {
    const n = this.#at.length;
    const i = n === 0 || this.#at[n - 1]! < at ? n : this.#firstAfter(at);
    if (i > 0 && this.#at[i - 1] === at) return;
    this.#at.splice(i, 0, at);
    this.#dataAt.splice(i, 0, dataAt);
    this.#end.splice(i, 0, end);
    this.#state.splice(i, 0, undefined);
  }

  /**
   * Make sure the data at [offset, offset+length) lies in records that matched their hashes:
   * undefined when they did already (the hot path), else a promise that verifies them.
   */
  verify(offset: number, length: number, verifyRecord: VerifyRecord): Promise<void> | undefined {
    let pending: Promise<void>[] | undefined;
    for (let pos = offset; pos < offset + Math.max(1, length); ) {
      const i = this.#find(pos);
      if (i < 0) {
        return Promise.reject(new StrataError('corrupt', `No record of the diff area holds bytes at ${pos}: its map and its log disagree. Reopen the shadow copy.`));
      }
      const s = this.#state[i];
      if (s !== true) (pending ??= []).push(s ?? this.#start(i, verifyRecord));
      pos = this.#end[i]!;
    }
    return pending ? Promise.all(pending).then(() => {}) : undefined;
  }

  #start(i: number, verifyRecord: VerifyRecord): Promise<void> {
    const at = this.#at[i]!;
    const p = verifyRecord(at, this.#dataAt[i]!, this.#end[i]!).then(
      () => this.#set(at, true),
      (e: unknown) => {
        // A mismatch stays (the data is damaged); anything else (an I/O error) may be retried.
        if (!(e instanceof StrataError && e.code === 'checksum-mismatch')) this.#set(at, undefined);
        throw e;
      },
    );
    p.catch(() => {});
    this.#state[i] = p;
    return p;
  }

  #set(at: number, state: true | undefined): void {
    const i = this.#firstAfter(at) - 1;
    if (i >= 0 && this.#at[i] === at) this.#state[i] = state;
  }

  /** Index of the record whose data holds byte `pos`, or -1. */
  #find(pos: number): number {
    const i = this.#firstAfter(pos) - 1;
    return i >= 0 && pos >= this.#dataAt[i]! && pos < this.#end[i]! ? i : -1;
  }

  /** Index of the first record starting after `pos`. */
  #firstAfter(pos: number): number {
    let lo = 0;
    let hi = this.#at.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#at[mid]! <= pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
