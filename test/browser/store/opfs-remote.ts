/**
 * Page-side adapters over the OPFS host worker: a Store and a StoreNamespace that forward every
 * call to the real OpfsStore/OpfsNamespace in the worker. `size` is cached from every reply, so
 * it is synchronous like a local store's. No argument checks here: the real store does them.
 */
import { wrap, type Remote } from 'comlink';
import type { NamespaceLock, OpenOptions, Store, StoreNamespace } from '../../../src/store/store.js';
import { registerErrorTransfer } from '../../../src/worker/errors.js';
import type { NamespaceOpenOptions, OpfsHostApi, StoreInfo } from './opfs-host.worker.js';

registerErrorTransfer();

export interface OpfsHost {
  worker: Worker;
  api: Remote<OpfsHostApi>;
  terminate(): void;
}

export function startOpfsHost(): OpfsHost {
  const worker = new Worker(new URL('./opfs-host.worker.ts', import.meta.url), { type: 'module' });
  return { worker, api: wrap<OpfsHostApi>(worker), terminate: () => worker.terminate() };
}

export class RemoteOpfsStore implements Store {
  private cachedSize: number;
  readonly readOnly: boolean;
  readonly resizable: boolean;

  constructor(
    private readonly api: Remote<OpfsHostApi>,
    private readonly info: StoreInfo,
  ) {
    this.cachedSize = info.size;
    this.readOnly = info.readOnly;
    this.resizable = info.resizable;
  }

  get size(): number {
    return this.cachedSize;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const r = await this.api.read(this.info.id, offset, length);
    this.cachedSize = r.size;
    return r.bytes;
  }

  async readInto(offset: number, target: Uint8Array): Promise<void> {
    const r = await this.api.read(this.info.id, offset, target.length);
    this.cachedSize = r.size;
    target.set(r.bytes);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.cachedSize = await this.api.write(this.info.id, offset, data);
  }

  async flush(): Promise<void> {
    this.cachedSize = await this.api.flush(this.info.id);
  }

  async truncate(size: number): Promise<void> {
    this.cachedSize = await this.api.truncate(this.info.id, size);
  }

  async close(): Promise<void> {
    await this.api.close(this.info.id);
  }
}

export class RemoteOpfsNamespace implements StoreNamespace {
  private constructor(
    private readonly api: Remote<OpfsHostApi>,
    private readonly id: number,
    readonly readOnly: boolean,
  ) {}

  static async open(api: Remote<OpfsHostApi>, path: string, options: NamespaceOpenOptions = {}): Promise<RemoteOpfsNamespace> {
    const id = await api.nsOpen(path, options);
    return new RemoteOpfsNamespace(api, id, await api.nsReadOnly(id));
  }

  async open(name: string, options?: OpenOptions): Promise<Store> {
    return new RemoteOpfsStore(this.api, await this.api.open(this.id, name, options));
  }
  exists(name: string): Promise<boolean> {
    return this.api.exists(this.id, name);
  }
  list(): Promise<string[]> {
    return this.api.list(this.id);
  }
  delete(name: string): Promise<void> {
    return this.api.delete(this.id, name);
  }
  sync(): Promise<void> {
    return this.api.sync(this.id);
  }
  async lock(): Promise<NamespaceLock> {
    const lockId = await this.api.lock(this.id);
    return { release: () => this.api.release(lockId) };
  }
}
