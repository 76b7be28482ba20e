import { StrataError } from '../errors.js';
import { BaseStore, type OpenOptions, type Store, type StoreNamespace } from './store.js';

/**
 * Fault injection for crash tests. Every mutating call (write, truncate) on any store opened
 * through a FaultNamespace gets a global sequence number from one FaultController. At the
 * chosen number the call is torn (partly applied) and the "machine crashes": every later call
 * on every store throws. `crash()` then turns the inner stores into what a disk would hold
 * after power loss: flushed writes stay, unflushed writes are kept, dropped or torn.
 */
export type TearMode = 'prefix' | 'sectors' | 'none' | 'full';
export type CrashMode = 'keep-unflushed' | 'drop-unflushed' | 'random';

export interface FaultPlan {
  /** Crash at this mutating call (0-based). The call is torn per `tear` and then throws. */
  crashAt?: number;
  tear?: TearMode;
  /** These mutating calls fail with an `io` error without crashing (a transient error). */
  failAt?: ReadonlySet<number>;
  /** Flush calls that fail (0-based over all flushes), without crashing. */
  failFlushAt?: ReadonlySet<number>;
  /** Seed for the choices made when tearing and on a `random` crash. */
  seed?: number;
  /** Sector size for `sectors` tears and `random` crashes. */
  sectorSize?: number;
}

export class FaultController {
  writes = 0;
  flushes = 0;
  crashed = false;
  plan: FaultPlan;
  private rngState: number;
  readonly stores = new Set<FaultStore>();

  constructor(plan: FaultPlan = {}) {
    this.plan = plan;
    this.rngState = (plan.seed ?? 1) >>> 0 || 1;
  }

  /** xorshift32: tiny and deterministic; crash tests need repeatable choices, not good randomness. */
  random(): number {
    let x = this.rngState;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rngState = x >>> 0;
    return this.rngState / 2 ** 32;
  }

  assertAlive(label: string): void {
    if (this.crashed) throw new StrataError('io', `Injected crash: ${label} is gone (the simulated machine crashed).`);
  }

  /** Called before each mutating call: 'ok', 'fail' (throw, nothing applied) or 'crash' (tear, then throw). */
  nextWrite(): 'ok' | 'fail' | 'crash' {
    const n = this.writes++;
    if (this.plan.crashAt === n) return 'crash';
    if (this.plan.failAt?.has(n)) return 'fail';
    return 'ok';
  }

  nextFlush(): 'ok' | 'fail' {
    const n = this.flushes++;
    return this.plan.failFlushAt?.has(n) ? 'fail' : 'ok';
  }

  /**
   * Simulate the power going out: every open store reverts its unflushed writes according to
   * `mode`, and all stores are closed. Afterwards the inner namespace holds the post-crash image.
   */
  async crash(mode: CrashMode = 'drop-unflushed'): Promise<void> {
    this.crashed = true;
    for (const s of this.stores) await s.applyCrash(mode);
    this.stores.clear();
  }
}

interface Undo {
  offset: number;
  /** bytes that were at [offset, offset + old.length) before the call */
  old: Uint8Array;
  /** size before the call */
  oldSize: number;
  /** what the call wrote (for re-applying on a random crash); null for truncate */
  data: Uint8Array | null;
  newSize: number;
}

/** A Store wrapper that counts, fails, tears and forgets writes as its controller says. */
export class FaultStore extends BaseStore {
  private undo: Undo[] = [];

  constructor(private readonly inner: Store, private readonly ctl: FaultController, label: string) {
    super(`fault:${label}`, inner.readOnly);
    ctl.stores.add(this);
  }

  get size(): number {
    return this.inner.size;
  }

  get resizable(): boolean {
    return this.inner.resizable;
  }

  protected async _readInto(offset: number, target: Uint8Array): Promise<void> {
    this.ctl.assertAlive(this.label);
    await this.inner.readInto(offset, target);
  }

  protected async _write(offset: number, data: Uint8Array): Promise<void> {
    this.ctl.assertAlive(this.label);
    const verdict = this.ctl.nextWrite();
    if (verdict === 'fail') throw new StrataError('io', `Injected write failure on ${this.label}.`);
    const oldSize = this.inner.size;
    const oldEnd = Math.min(oldSize, offset + data.length);
    const old = oldEnd > offset ? await this.inner.read(offset, oldEnd - offset) : new Uint8Array(0);
    const copy = data.slice();
    this.undo.push({ offset, old, oldSize, data: copy, newSize: Math.max(oldSize, offset + data.length) });
    if (verdict === 'crash') {
      await this.tearInto(offset, copy, this.ctl.plan.tear ?? 'prefix');
      this.ctl.crashed = true;
      throw new StrataError('io', `Injected crash during a write to ${this.label}.`);
    }
    await this.inner.write(offset, copy);
  }

  protected async _truncate(size: number): Promise<void> {
    this.ctl.assertAlive(this.label);
    const verdict = this.ctl.nextWrite();
    if (verdict === 'fail') throw new StrataError('io', `Injected truncate failure on ${this.label}.`);
    const oldSize = this.inner.size;
    const old = size < oldSize ? await this.inner.read(size, oldSize - size) : new Uint8Array(0);
    this.undo.push({ offset: size, old, oldSize, data: null, newSize: size });
    if (verdict === 'crash') {
      // A torn truncate either happened or did not.
      if (this.ctl.random() < 0.5) await this.inner.truncate(size);
      this.ctl.crashed = true;
      throw new StrataError('io', `Injected crash during a truncate of ${this.label}.`);
    }
    await this.inner.truncate(size);
  }

  protected async _flush(): Promise<void> {
    this.ctl.assertAlive(this.label);
    if (this.ctl.nextFlush() === 'fail') throw new StrataError('io', `Injected flush failure on ${this.label}.`);
    await this.inner.flush();
    this.undo = [];
  }

  protected async _close(): Promise<void> {
    // A closed store's unflushed writes are still volatile: while there are any, keep the inner
    // store open so a later crash can take them back.
    if (this.undo.length === 0) {
      this.ctl.stores.delete(this);
      await this.inner.close();
    }
  }

  /** Write part of `data`: a prefix, or a random subset of sectors (disks tear at sector granularity in any order). */
  private async tearInto(offset: number, data: Uint8Array, tear: TearMode): Promise<void> {
    if (tear === 'none' || data.length === 0) return;
    if (tear === 'full') {
      await this.inner.write(offset, data);
      return;
    }
    const sector = this.ctl.plan.sectorSize ?? 512;
    if (tear === 'prefix') {
      const keep = Math.floor(this.ctl.random() * data.length);
      if (keep > 0) await this.inner.write(offset, data.subarray(0, keep));
      return;
    }
    for (let p = 0; p < data.length; p += sector) {
      if (this.ctl.random() < 0.5) await this.inner.write(offset + p, data.subarray(p, Math.min(data.length, p + sector)));
    }
  }

  /** Revert unflushed writes to the last flushed image, then re-apply some of them per `mode`. */
  async applyCrash(mode: CrashMode): Promise<void> {
    this.closed = true;
    if (mode === 'keep-unflushed' || this.undo.length === 0) {
      this.undo = [];
      await this.inner.close();
      return;
    }
    const log = this.undo;
    this.undo = [];
    for (let i = log.length - 1; i >= 0; i--) {
      const u = log[i]!;
      await this.inner.truncate(u.oldSize);
      if (u.old.length > 0) await this.inner.write(u.offset, u.old);
    }
    if (mode === 'drop-unflushed') {
      await this.inner.close();
      return;
    }
    // random: each unflushed call independently lands whole, lands torn, or is lost.
    for (const u of log) {
      const r = this.ctl.random();
      if (u.data === null) {
        if (r < 0.5) await this.inner.truncate(u.newSize);
        continue;
      }
      if (r < 0.4) await this.inner.write(u.offset, u.data);
      else if (r < 0.7) await this.tearInto(u.offset, u.data, 'sectors');
    }
    await this.inner.close();
  }
}

/** A namespace whose stores all report to one FaultController. */
export class FaultNamespace implements StoreNamespace {
  constructor(readonly inner: StoreNamespace, readonly controller: FaultController) {}
  get label(): string | undefined {
    return this.inner.label;
  }

  get readOnly(): boolean {
    return this.inner.readOnly;
  }

  async open(name: string, options?: OpenOptions): Promise<Store> {
    this.controller.assertAlive(name);
    const s = await this.inner.open(name, options);
    return new FaultStore(s, this.controller, name);
  }

  exists(name: string): Promise<boolean> {
    this.controller.assertAlive(name);
    return this.inner.exists(name);
  }

  list(): Promise<string[]> {
    this.controller.assertAlive('namespace');
    return this.inner.list();
  }

  async delete(name: string): Promise<void> {
    this.controller.assertAlive(name);
    await this.inner.delete(name);
  }

  async sync(): Promise<void> {
    this.controller.assertAlive('namespace');
    await this.inner.sync();
  }
}
