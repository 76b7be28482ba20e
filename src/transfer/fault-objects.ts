/**
 * Fault injection for object stores, as src/store/fault.ts does for Stores: every put and every
 * delete call gets a sequence number; at the chosen one the call fails (a transient error) or
 * the "process crashes" (that call and every later call throw). A put is atomic in every backend,
 * so a crash either keeps it (`landed`: it reached the store but the caller never heard) or not.
 * Hooks run before each put and delete, to interleave another client deterministically.
 */
import { StrataError } from '../errors.js';
import type { ObjectInfo, ObjectRange, ObjectStore } from './object-store.js';

export interface ObjectFaultPlan {
  /** crash at this put (0-based) */
  crashAtPut?: number;
  /** crash at this delete call (0-based) */
  crashAtDelete?: number;
  /** at a crash, the put or delete itself is applied first (it landed; the reply was lost) */
  landed?: boolean;
  /** these puts fail with `io` without crashing */
  failPuts?: ReadonlySet<number>;
  /** runs before put number `n` is applied (before any fault) */
  beforePut?: (key: string, n: number) => void | Promise<void>;
  /** runs before delete call number `n` is applied */
  beforeDelete?: (keys: readonly string[], n: number) => void | Promise<void>;
}

export class FaultObjectStore implements ObjectStore {
  readonly description: string;
  puts = 0;
  deletes = 0;
  crashed = false;
  /** keys of puts that were applied, in order */
  readonly putLog: string[] = [];
  /** bytes of puts that were applied */
  putBytes = 0;

  constructor(
    readonly inner: ObjectStore,
    public plan: ObjectFaultPlan = {},
  ) {
    this.description = inner.description;
  }

  private alive(): void {
    if (this.crashed) throw new StrataError('io', `Injected crash: ${this.description} is gone (the simulated process crashed).`);
  }

  async get(key: string, range?: ObjectRange, signal?: AbortSignal): Promise<Uint8Array | null> {
    this.alive();
    return this.inner.get(key, range, signal);
  }

  async head(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    this.alive();
    return this.inner.head(key, signal);
  }

  async put(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    this.alive();
    const n = this.puts++;
    await this.plan.beforePut?.(key, n);
    this.alive();
    if (this.plan.failPuts?.has(n)) throw new StrataError('io', `Injected failure of put ${n} (${key}).`);
    if (this.plan.crashAtPut === n) {
      if (this.plan.landed) await this.apply(key, data, options);
      this.crashed = true;
      throw new StrataError('io', `Injected crash at put ${n} (${key}).`);
    }
    return this.apply(key, data, options);
  }

  private async apply(key: string, data: Uint8Array, options?: { ifAbsent?: boolean; signal?: AbortSignal }): Promise<boolean> {
    const wrote = await this.inner.put(key, data, options);
    if (wrote) {
      this.putLog.push(key);
      this.putBytes += data.length;
    }
    return wrote;
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    this.alive();
    for await (const o of this.inner.list(prefix, signal)) {
      this.alive();
      yield o;
    }
  }

  async delete(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    this.alive();
    const n = this.deletes++;
    await this.plan.beforeDelete?.(keys, n);
    this.alive();
    if (this.plan.crashAtDelete === n) {
      if (this.plan.landed) await this.inner.delete(keys, signal);
      this.crashed = true;
      throw new StrataError('io', `Injected crash at delete ${n}.`);
    }
    await this.inner.delete(keys, signal);
  }
}
