/**
 * A Store wrapper for forcing interleavings in tests: `beforeRead` runs before a read reaches
 * the inner store, `afterRead` once it has its bytes (before the caller sees them), `beforeWrite`
 * before a write reaches the inner store.
 * Either may return a promise to hold the call there (a gate the test opens), or throw to fail it.
 * Memory stores do no real I/O, so with gates the order of events is fixed by the test alone.
 */
import { BaseStore, type Store } from '../../../src/store/store.js';

export class GatedStore extends BaseStore {
  beforeRead: ((offset: number, target: Uint8Array) => Promise<void> | void) | null = null;
  afterRead: ((offset: number, target: Uint8Array) => Promise<void> | void) | null = null;
  beforeWrite: ((offset: number, data: Uint8Array) => Promise<void> | void) | null = null;

  constructor(private readonly inner: Store, label = 'gated') {
    super(label, inner.readOnly);
  }

  get size(): number {
    return this.inner.size;
  }

  get resizable(): boolean {
    return this.inner.resizable;
  }

  protected async _readInto(offset: number, target: Uint8Array): Promise<void> {
    const b = this.beforeRead;
    if (b) await b(offset, target);
    await this.inner.readInto(offset, target);
    const h = this.afterRead;
    if (h) await h(offset, target);
  }

  protected async _write(offset: number, data: Uint8Array): Promise<void> {
    const h = this.beforeWrite;
    if (h) await h(offset, data);
    await this.inner.write(offset, data);
  }

  protected _flush(): Promise<void> {
    return this.inner.flush();
  }

  protected _truncate(size: number): Promise<void> {
    return this.inner.truncate(size);
  }

  protected _close(): Promise<void> {
    return this.inner.close();
  }
}

/** A gate: `wait()` holds until `open()`; `reached` resolves when the first waiter arrives. */
export class Gate {
  private release!: () => void;
  private arrived!: () => void;
  private readonly opened = new Promise<void>((r) => (this.release = r));
  readonly reached = new Promise<void>((r) => (this.arrived = r));

  wait(): Promise<void> {
    this.arrived();
    return this.opened;
  }

  open(): void {
    this.release();
  }
}

/** Let every pending promise job and I/O-free callback run (memory stores only: no real I/O). */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}
