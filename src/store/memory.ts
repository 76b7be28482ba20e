import { StrataError } from '../errors.js';
import { BaseStore, checkName, type NamespaceLock, type OpenOptions, type Store, type StoreNamespace } from './store.js';

/** Writer locks of memory namespaces, keyed by their shared file map. */
const memoryLocks = new WeakSet<Map<string, MemoryBacking>>();

/** The bytes behind a memory store; shared by every store opened on the same namespace name. */
export class MemoryBacking {
  buf: Uint8Array;
  length: number;

  constructor(initial?: Uint8Array) {
    this.buf = initial ?? new Uint8Array(0);
    this.length = this.buf.length;
  }

  /** Grow geometrically so appends are amortised O(1). */
  ensureCapacity(end: number, label: string): void {
    if (end <= this.buf.length) return;
    if (end > 2 ** 32) throw new StrataError('quota', `Memory store ${label} cannot grow to ${end} bytes; use a file-backed store for data this large.`);
    const next = new Uint8Array(Math.max(end, Math.min(this.buf.length * 2, end + 64 * 2 ** 20), 4096));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  contents(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** Bytes in memory. `flush` is a no-op: memory is as durable as it gets. */
export class MemoryStore extends BaseStore {
  readonly resizable = true;
  readonly backing: MemoryBacking;

  constructor(initial?: Uint8Array | MemoryBacking, options: { readOnly?: boolean; label?: string } = {}) {
    super(options.label ?? 'memory', options.readOnly ?? false);
    this.backing = initial instanceof MemoryBacking ? initial : new MemoryBacking(initial);
  }

  get size(): number {
    return this.backing.length;
  }

  /** A copy of the current contents (for tests). */
  contents(): Uint8Array {
    return this.backing.contents();
  }

  protected async _readInto(offset: number, target: Uint8Array): Promise<void> {
    target.set(this.backing.buf.subarray(offset, offset + target.length));
  }

  readIntoNow(offset: number, target: Uint8Array): boolean {
    this.checkRead(offset, target.length);
    target.set(this.backing.buf.subarray(offset, offset + target.length));
    return true;
  }

  protected async _write(offset: number, data: Uint8Array): Promise<void> {
    const b = this.backing;
    const end = offset + data.length;
    b.ensureCapacity(end, this.label);
    if (offset > b.length) b.buf.fill(0, b.length, offset);
    b.buf.set(data, offset);
    if (end > b.length) b.length = end;
  }

  protected async _flush(): Promise<void> {}

  protected async _truncate(size: number): Promise<void> {
    const b = this.backing;
    if (size > b.length) {
      b.ensureCapacity(size, this.label);
      b.buf.fill(0, b.length, size);
    }
    b.length = size;
  }

  protected async _close(): Promise<void> {}
}

/** A namespace of memory stores. Opening the same name twice gives views of the same bytes. */
export class MemoryNamespace implements StoreNamespace {
  readonly readOnly: boolean;
  readonly files: Map<string, MemoryBacking>;

  constructor(options: { readOnly?: boolean; files?: Map<string, MemoryBacking> } = {}) {
    this.readOnly = options.readOnly ?? false;
    this.files = options.files ?? new Map();
  }

  async open(name: string, options: OpenOptions = {}): Promise<Store> {
    checkName(name);
    let backing = this.files.get(name);
    if (!backing) {
      if (!options.create) throw new StrataError('not-found', `No store named "${name}" in this memory namespace.`);
      if (this.readOnly) throw new StrataError('read-only', `Cannot create "${name}": the namespace is read-only.`);
      backing = new MemoryBacking();
      this.files.set(name, backing);
    }
    return new MemoryStore(backing, { label: `memory:${name}`, readOnly: this.readOnly || !!options.readOnly });
  }

  async exists(name: string): Promise<boolean> {
    return this.files.has(name);
  }

  async list(): Promise<string[]> {
    return [...this.files.keys()].sort();
  }

  async delete(name: string): Promise<void> {
    if (this.readOnly) throw new StrataError('read-only', `Cannot delete "${name}": the namespace is read-only.`);
    this.files.delete(name);
  }

  async sync(): Promise<void> {}

  async lock(): Promise<NamespaceLock> {
    if (memoryLocks.has(this.files)) throw new StrataError('locked', 'This memory volume is already open for writing; close it first or open it read-only.');
    memoryLocks.add(this.files);
    let held = true;
    return {
      release: async () => {
        if (held) memoryLocks.delete(this.files);
        held = false;
      },
    };
  }
}
