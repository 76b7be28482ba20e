/**
 * A memory namespace whose stores call hooks before each write and flush: subclasses override
 * `beforeWrite` (count, fail with an error, or hold a write behind a gate) and `beforeFlush`
 * (count syncs). Everything else passes straight through to the memory stores.
 */
import { MemoryNamespace } from '../../../src/store/memory.js';
import type { OpenOptions, Store, StoreNamespace } from '../../../src/store/store.js';

export class HookedNamespace implements StoreNamespace {
  readonly inner = new MemoryNamespace();
  readonly readOnly = false;

  /** Before a write of store `name` reaches it; a rejection fails the write with nothing applied. */
  protected beforeWrite(_name: string): Promise<void> | void {}

  /** Before a flush of store `name` reaches it. */
  protected beforeFlush(_name: string): void {}

  async open(name: string, options?: OpenOptions): Promise<Store> {
    const s = await this.inner.open(name, options);
    const ns = this;
    return {
      get size() {
        return s.size;
      },
      readOnly: s.readOnly,
      resizable: s.resizable,
      read: (o, n) => s.read(o, n),
      readInto: (o, t) => s.readInto(o, t),
      async write(o, d) {
        await ns.beforeWrite(name);
        await s.write(o, d);
      },
      flush() {
        ns.beforeFlush(name);
        return s.flush();
      },
      truncate: (n) => s.truncate(n),
      close: () => s.close(),
    };
  }
  exists(name: string): Promise<boolean> {
    return this.inner.exists(name);
  }
  list(): Promise<string[]> {
    return this.inner.list();
  }
  delete(name: string): Promise<void> {
    return this.inner.delete(name);
  }
  sync(): Promise<void> {
    return this.inner.sync();
  }
}
