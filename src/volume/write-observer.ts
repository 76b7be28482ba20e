/**
 * Write observers: the one door through which something outside the volume sees every change of
 * its live view, in order — block-job mirrors (consolidation target, mirror, raw mirror) today,
 * a write log and replication next.
 *
 * Every write (each batch of whole blocks the volume puts into its active layer) and every flush
 * becomes an event with a sequence number, 1, 2, 3, ... per open volume. A write takes its number
 * when it starts, holding its blocks (writes of the same blocks never run at once, so their
 * numbers are the order in which they were applied); writes of different blocks may run at the
 * same time. A flush takes its number when it is called, and waits for every write that had
 * started before it: every write with a lower number is applied before the flush syncs.
 * Observers are called in attach order.
 *
 * - A 'sync' observer is handed a write event while the write holds its blocks, in parallel with
 *   the active layer's own store writes; the write resolves only after the observer's promise
 *   settles. Events of writes to different blocks may reach it in any order and at the same
 *   time; events of the same blocks come in sequence order. A flush event reaches it after every
 *   write event with a lower number was accepted. The event's buffers are the volume's and the
 *   caller's: valid until that promise settles; copy what you keep.
 * - An 'async' observer gets its own copy of each event after it succeeded on the volume,
 *   strictly in sequence order, one at a time (the next only after the previous one's promise
 *   settled); the write does not wait. `handle.idle()` waits until it has caught up.
 *
 * A failure (a rejected promise or a throw) never fails the volume's write: the volume's own data
 * is already stored, and other observers have it too, so an error would tell the caller "not
 * written" about a write that is. What happens instead is the observer's choice (`onFailure`):
 * - 'detach' (default): the observer is detached; its handle keeps the error and the sequence
 *   number of the first event it did not accept. Mirrors work this way (their job fails).
 * - 'freeze': as 'detach', and the volume holds the write that failed and every write and flush
 *   after it (applied to the volume, not acknowledged; new ones wait before starting) until the
 *   owner calls `handle.detach()`. Reads go on. This is replication's "freeze on failure": no
 *   write is acknowledged that the secondary may lack, until the owner decides (e.g. detach,
 *   then resync from `failedSeq` on).
 *
 * A sync observer may see a write that then fails on the volume's own store (it ran in parallel):
 * that sequence number never reaches the async observers.
 *
 * Detaching stops new hand-overs at once; `detach()` resolves once everything already handed over
 * has been accepted (an async observer's queue drains), so no write handed over is lost.
 */

/** A byte range of the volume. */
export interface ByteRange {
  offset: number;
  length: number;
}

/**
 * The whole blocks the active layer recorded for one write: block `blocks[k]` is a known-zero
 * entry when `zero?.[k]` is nonzero, else its bytes are at `data[dataIndex[k] * blockSize]` and
 * its XXH3-128 at `hashes[dataIndex[k] * 16]`. Zero blocks that nothing below shows through are
 * left out (they read as zeros either way).
 */
export interface LayerWrite {
  readonly blocks: readonly number[];
  readonly zero: ArrayLike<number> | null;
  readonly data: Uint8Array;
  readonly dataIndex: readonly number[];
  readonly hashes: Uint8Array;
}

export interface WriteEvent {
  readonly type: 'write';
  readonly seq: number;
  /** 'data': write / writeRanges; 'zero': writeZeroes (the volume has no separate trim) */
  readonly kind: 'data' | 'zero';
  /** what the caller changed, ascending byte ranges (inside `runs`) */
  readonly ranges: readonly ByteRange[];
  /** the whole blocks this write covers: flat [firstBlock, count]*, ascending */
  readonly runs: readonly number[];
  /** their bytes back to back, as the volume reads them now (partial blocks copied up) */
  readonly data: Uint8Array;
  /** what the active layer recorded (hashes included: a mirror into a layer need not hash again) */
  readonly layer: LayerWrite;
}

/** A flush: every write event before it is to be durable when the volume's flush resolves. */
export interface FlushEvent {
  readonly type: 'flush';
  readonly seq: number;
}

export type VolumeEvent = WriteEvent | FlushEvent;

export type ObserverMode = 'sync' | 'async';
export type ObserverFailure = 'detach' | 'freeze';

export interface WriteObserver {
  readonly mode: ObserverMode;
  /** what a failure of this observer does (default 'detach'; see the file comment) */
  readonly onFailure?: ObserverFailure;
  observe(event: VolumeEvent): void | Promise<void>;
  /**
   * Sync observers only, optional (write-ahead): make durable every write event accepted so far.
   * Each flush of a layer calls it after fixing what the flush will record (writes that ended
   * before) and before recording it, in parallel with the layer's data sync; a rejection fails
   * that flush (nothing is recorded). So the write log is never behind the volume after a crash.
   */
  commit?(): Promise<void>;
  /**
   * Sync observers only, optional: event `seq` ended on the volume (`ok` false: the volume's own
   * store write failed, so the write it saw did not happen; a write log voids it).
   */
  ended?(seq: number, ok: boolean): void;
  /**
   * Optional: asked before a write of [offset, offset+length) starts; a throw refuses the write
   * (the caller gets the error, nothing is written, the observer stays attached). A write log at
   * its quota refuses this way.
   */
  admit?(offset: number, length: number): void;
  /** Optional: called once when the observer is detached (also when the volume closes); detach() waits for it. */
  detached?(): void | Promise<void>;
}

export interface ObserverHandle {
  readonly observer: WriteObserver;
  /** still receiving events */
  readonly attached: boolean;
  /** sequence number of the last event handed over (0: none yet) */
  readonly lastSeq: number;
  /** the observer's failure, or null */
  readonly error: unknown;
  /** sequence number of the first event it did not accept (after a failure), else null */
  readonly failedSeq: number | null;
  /** resolves once every event handed over so far has been accepted (or the observer failed) */
  idle(): Promise<void>;
  /** stop handing events over (and end a freeze it caused); resolves like idle() */
  detach(): Promise<void>;
}

interface Entry extends ObserverHandle {
  attached: boolean;
  lastSeq: number;
  error: unknown;
  failedSeq: number | null;
  /** the async queue's tail (or the last sync delivery) */
  tail: Promise<void>;
  /** async: deliveries queued or in progress */
  queued: number;
  /** detach(): the queue drained and `detached` ran */
  ended?: Promise<void>;
}

/** The volume's observers and its event sequence (one per open volume). */
export class WriteObservers {
  private list: Entry[] = [];
  private syncCount = 0;
  private asyncCount = 0;
  private seq = 0;
  /** the highest sequence number passed on to the async observers (all lower ones were too) */
  private released = 0;
  /** settled events waiting for a lower number to settle: the event, or null for a failed write */
  private readonly early = new Map<number, VolumeEvent | null>();
  private freeze: { by: Set<Entry>; promise: Promise<void>; release: () => void } | null = null;

  /** True when any observer is attached (the write path skips all of this otherwise). */
  get any(): boolean {
    return this.list.length > 0;
  }

  /** Resolves when no observer holds the volume frozen; null when none does (the common case). */
  get gate(): Promise<void> | null {
    return this.freeze?.promise ?? null;
  }

  attach(observer: WriteObserver): ObserverHandle {
    if (observer.mode !== 'sync' && observer.mode !== 'async') throw new TypeError(`observer mode must be 'sync' or 'async'`);
    const self = this;
    const e: Entry = {
      observer,
      attached: true,
      lastSeq: 0,
      error: null,
      failedSeq: null,
      tail: RESOLVED,
      queued: 0,
      idle() {
        return e.tail;
      },
      detach() {
        self.remove(e);
        self.unfreeze(e);
        e.ended ??= e.tail.then(async () => {
          await observer.detached?.();
        });
        return e.ended;
      },
    };
    this.list = [...this.list, e];
    if (observer.mode === 'sync') this.syncCount++;
    else this.asyncCount++;
    return e;
  }

  /** Detach every observer (the volume closes); resolves when their queues drained. */
  async detachAll(): Promise<void> {
    await Promise.all(this.list.map((e) => e.detach()));
  }

  /** The next sequence number (under the volume's write lock). */
  nextSeq(): number {
    return ++this.seq;
  }

  /**
   * Hand `event` to the sync observers; null when there are none. The promise never rejects
   * (failures are handled per observer).
   */
  deliverSync(event: VolumeEvent): Promise<void> | null {
    if (this.syncCount === 0) return null;
    let ps: Promise<void>[] | null = null;
    for (const e of this.list) {
      if (e.observer.mode !== 'sync') continue;
      const p = this.deliver(e, event);
      if (p === null) continue;
      // deliveries of writes to different blocks overlap: the handle's tail waits for all of them
      const prev = e.tail;
      e.tail = prev === RESOLVED ? p : Promise.all([prev, p]).then(noop);
      (ps ??= []).push(p);
    }
    if (ps === null) return null;
    return ps.length === 1 ? ps[0]! : Promise.all(ps).then(noop);
  }

  /** Ask every observer with `admit` whether a write may start; the first refusal throws. */
  admit(offset: number, length: number): void {
    for (const e of this.list) e.observer.admit?.(offset, length);
  }

  /**
   * Ask the write-ahead observers (WriteObserver.commit) to make what they accepted durable; null
   * when there are none. Rejects when one fails (it is then detached like any failed observer).
   */
  commitAhead(): Promise<void> | null {
    if (this.syncCount === 0) return null;
    let ps: Promise<void>[] | null = null;
    for (const e of this.list) {
      if (e.observer.mode !== 'sync' || !e.observer.commit) continue;
      const seq = this.seq;
      let p: Promise<void>;
      try {
        p = e.observer.commit();
      } catch (err) {
        p = Promise.reject(err);
      }
      (ps ??= []).push(
        p.catch((err: unknown) => {
          this.fail(e, err, seq);
          throw err;
        }),
      );
    }
    if (ps === null) return null;
    return ps.length === 1 ? ps[0]! : Promise.all(ps).then(noop);
  }

  /**
   * Event `seq` ended on the volume: `event` when it succeeded (a write's buffers are copied now:
   * the write does not wait), null when it failed. Every number handed out by nextSeq must be
   * settled exactly once. The async observers get the events in sequence order: one that ends
   * before a lower number waits for it.
   */
  settle(seq: number, event: VolumeEvent | null): void {
    if (this.syncCount > 0) {
      for (const e of this.list) {
        if (e.observer.mode === 'sync' && e.observer.ended) {
          try {
            e.observer.ended(seq, event !== null);
          } catch (err) {
            this.fail(e, err, seq);
          }
        }
      }
    }
    if (seq !== this.released + 1) {
      // no async observer now: one attached later must not get an event from before it came
      this.early.set(seq, event && this.asyncCount > 0 ? (event.type === 'write' ? copyEvent(event) : event) : null);
      return;
    }
    this.released = seq;
    if (event) this.deliverAsync(event);
    for (;;) {
      const next = this.released + 1;
      if (!this.early.has(next)) return;
      const ev = this.early.get(next)!;
      this.early.delete(next);
      this.released = next;
      if (ev) this.deliverAsync(ev);
    }
  }

  /** Queue `event` (copied unless it already is: the write does not wait) for each async observer. */
  private deliverAsync(event: VolumeEvent): void {
    if (this.asyncCount === 0) return;
    const own = event.type === 'write' && !COPIES.has(event) ? copyEvent(event) : event;
    for (const e of this.list) {
      if (e.observer.mode !== 'async') continue;
      if (e.queued === 0) {
        // nothing queued: hand it over now (the observer's own work still runs on its own)
        const p = this.deliver(e, own);
        if (p !== null) this.track(e, p);
      } else {
        this.track(
          e,
          e.tail.then(() => (e.error === null ? this.deliver(e, own) : null) ?? undefined),
        );
      }
    }
  }

  /** `p` is the async observer's newest queued delivery. */
  private track(e: Entry, p: Promise<void>): void {
    e.queued++;
    e.tail = p.then(() => {
      e.queued--;
    });
  }

  /** Call the observer; a promise when it returned one (never rejects), else null. */
  private deliver(e: Entry, event: VolumeEvent): Promise<void> | null {
    e.lastSeq = event.seq;
    let r: void | Promise<void>;
    try {
      r = e.observer.observe(event);
    } catch (err) {
      this.fail(e, err, event.seq);
      return null;
    }
    if (r === undefined || r === null || typeof (r as Promise<void>).then !== 'function') return null;
    return (r as Promise<void>).then(noop, (err: unknown) => this.fail(e, err, event.seq));
  }

  private fail(e: Entry, err: unknown, seq: number): void {
    if (e.error !== null) return;
    e.error = err;
    e.failedSeq = seq;
    const wasAttached = e.attached;
    this.remove(e);
    // its owner learns of the failure from the observer's own error; `detached` still runs once
    e.ended ??= e.tail.then(async () => {
      await e.observer.detached?.();
    }).catch(noop);
    // a freeze asked for by an observer its owner already detached has nobody to end it
    if (e.observer.onFailure === 'freeze' && wasAttached) {
      if (!this.freeze) {
        let release!: () => void;
        const promise = new Promise<void>((r) => (release = r));
        this.freeze = { by: new Set(), promise, release };
      }
      this.freeze.by.add(e);
    }
  }

  private remove(e: Entry): void {
    if (!e.attached) return;
    e.attached = false;
    this.list = this.list.filter((x) => x !== e);
    if (e.observer.mode === 'sync') this.syncCount--;
    else this.asyncCount--;
  }

  private unfreeze(e: Entry): void {
    const f = this.freeze;
    if (!f || !f.by.delete(e) || f.by.size > 0) return;
    this.freeze = null;
    f.release();
  }
}

/** A settled promise: a handle with nothing in flight. */
const RESOLVED: Promise<void> = Promise.resolve();
/** events that are already the observers' own copies */
const COPIES = new WeakSet<VolumeEvent>();

function copyEvent(ev: WriteEvent): WriteEvent {
  const data = ev.data.slice();
  const l = ev.layer;
  let used = 0;
  for (const i of l.dataIndex) if (i + 1 > used) used = i + 1;
  const hashes = l.hashes.slice(0, used * 16);
  const copy: WriteEvent = {
    type: 'write',
    seq: ev.seq,
    kind: ev.kind,
    ranges: ev.ranges.map((r) => ({ offset: r.offset, length: r.length })),
    runs: ev.runs.slice(),
    data,
    layer: { blocks: l.blocks.slice(), zero: l.zero ? Array.from(l.zero) : null, data, dataIndex: l.dataIndex.slice(), hashes },
  };
  COPIES.add(copy);
  return copy;
}

function noop(): void {}
