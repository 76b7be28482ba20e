import type { OpenOptions, Store, StoreNamespace } from '../../../src/store/store.js';

/**
 * A namespace that passes every call through and folds each store call (which store, which
 * call, offset, length) into a running hash, so two runs can be compared call for call: a
 * seeded workload must make the same sequence of store calls every time, or a crash sweep's
 * crash point k would not be the same call from run to run.
 *
 * `flushTurns`: each store flush waits this many microtask turns before it starts, as a disk's
 * cache flush takes far longer than a write. Without it a memory store's flush completes before
 * any other operation moves, and a flush that is not waited for (a missing `await`) still looks
 * durable to a crash sweep.
 */
export class TraceNamespace implements StoreNamespace {
  hash = 0x811c9dc5;
  calls = 0;

  constructor(readonly inner: StoreNamespace, readonly flushTurns = 0) {}

  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  get label(): string | undefined {
    return this.inner.label;
  }

  note(...parts: (string | number)[]): void {
    this.calls++;
    const s = parts.join(':') + ';';
    let h = this.hash;
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
    this.hash = h;
  }

  async open(name: string, options?: OpenOptions): Promise<Store> {
    this.note('open', name, options?.create ? 1 : 0);
    return traceStore(await this.inner.open(name, options), name, this);
  }
  exists(name: string): Promise<boolean> {
    this.note('exists', name);
    return this.inner.exists(name);
  }
  list(): Promise<string[]> {
    this.note('list');
    return this.inner.list();
  }
  delete(name: string): Promise<void> {
    this.note('delete', name);
    return this.inner.delete(name);
  }
  sync(): Promise<void> {
    this.note('sync');
    return this.inner.sync();
  }
}

function traceStore(s: Store, name: string, t: TraceNamespace): Store {
  return {
    get size() {
      return s.size;
    },
    get readOnly() {
      return s.readOnly;
    },
    get resizable() {
      return s.resizable;
    },
    read(offset, length) {
      t.note('read', name, offset, length);
      return s.read(offset, length);
    },
    readInto(offset, target) {
      t.note('read', name, offset, target.length);
      return s.readInto(offset, target);
    },
    write(offset, data) {
      t.note('write', name, offset, data.length);
      return s.write(offset, data);
    },
    async flush() {
      t.note('flush', name);
      for (let i = 0; i < t.flushTurns; i++) await null;
      return s.flush();
    },
    truncate(size) {
      t.note('truncate', name, size);
      return s.truncate(size);
    },
    close() {
      t.note('close', name);
      return s.close();
    },
  };
}
