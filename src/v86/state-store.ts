/**
 * Where VM snapshots keep v86's machine state, by snapshot name. The disk half of a VM snapshot
 * is a volume snapshot; the machine half is one file per snapshot beside it:
 * - `NamespaceStateStore`: inside the volume's own namespace (a Node directory, memory, or any
 *   StoreNamespace), as `v86-state.<name>` — the volume ignores files that are not its own, so
 *   the state lives and is deleted with the volume;
 * - `OpfsStateStore`: a directory in the origin's OPFS, for a page whose volume runs in a worker
 *   (the asynchronous OPFS API works on the page; sync handles are the worker's);
 * - `MemoryStateStore`: a Map, for tests.
 * Each file is framed and checksummed (state-file.ts); a torn one is refused, not restored.
 */
import { StrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';

export interface MachineStateStore {
  put(name: string, bytes: Uint8Array): Promise<void>;
  get(name: string): Promise<Uint8Array | undefined>;
  delete(name: string): Promise<void>;
  /** The snapshots that have a state, with the state's stored size. */
  list(): Promise<{ name: string; bytes: number }[]>;
}

const PREFIX = 'v86-state.';

/** Snapshot names may hold `+` and `:`; store names may not: they are escaped as `_xx`. */
export function stateFileName(name: string): string {
  const escaped = name.replace(/[^A-Za-z0-9.-]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  const file = PREFIX + escaped;
  if (file.length > 128) throw new StrataError('invalid-argument', `The snapshot name "${name}" is too long to keep a machine state beside it; use a name of at most 38 characters.`);
  return file;
}

function snapshotName(file: string): string | undefined {
  if (!file.startsWith(PREFIX)) return undefined;
  return file.slice(PREFIX.length).replace(/_([0-9a-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export class MemoryStateStore implements MachineStateStore {
  private readonly map = new Map<string, Uint8Array>();
  async put(name: string, bytes: Uint8Array) {
    this.map.set(name, bytes.slice());
  }
  async get(name: string) {
    return this.map.get(name)?.slice();
  }
  async delete(name: string) {
    this.map.delete(name);
  }
  async list() {
    return [...this.map].map(([name, b]) => ({ name, bytes: b.length }));
  }
}

export class NamespaceStateStore implements MachineStateStore {
  constructor(private readonly ns: StoreNamespace) {}

  async put(name: string, bytes: Uint8Array): Promise<void> {
    const store = await this.ns.open(stateFileName(name), { create: true });
    try {
      await store.truncate(0);
      await store.write(0, bytes);
      await store.flush();
    } finally {
      await store.close();
    }
    await this.ns.sync();
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    const file = stateFileName(name);
    if (!(await this.ns.exists(file))) return undefined;
    const store = await this.ns.open(file, { readOnly: true });
    try {
      return await store.read(0, store.size);
    } finally {
      await store.close();
    }
  }

  async delete(name: string): Promise<void> {
    const file = stateFileName(name);
    if (await this.ns.exists(file)) await this.ns.delete(file);
  }

  async list(): Promise<{ name: string; bytes: number }[]> {
    const out: { name: string; bytes: number }[] = [];
    for (const file of await this.ns.list()) {
      const name = snapshotName(file);
      if (name === undefined) continue;
      const store = await this.ns.open(file, { readOnly: true });
      out.push({ name, bytes: store.size });
      await store.close();
    }
    return out;
  }
}

/** A directory of the origin's OPFS (created on first use), e.g. `vm-states/vm1`. */
export class OpfsStateStore implements MachineStateStore {
  constructor(private readonly path: string) {}

  private async dir(): Promise<FileSystemDirectoryHandle> {
    let d = await navigator.storage.getDirectory();
    for (const part of this.path.split('/').filter(Boolean)) d = await d.getDirectoryHandle(part, { create: true });
    return d;
  }

  async put(name: string, bytes: Uint8Array): Promise<void> {
    const d = await this.dir();
    const file = stateFileName(name);
    // Written under a temporary name and then moved over the old one would need `move()`, which
    // not every browser has; the checksum in the file catches a torn write instead.
    const h = await d.getFileHandle(file, { create: true });
    const w = await h.createWritable();
    await w.write(bytes as Uint8Array<ArrayBuffer>);
    await w.close();
  }

  async get(name: string): Promise<Uint8Array | undefined> {
    const d = await this.dir();
    try {
      const h = await d.getFileHandle(stateFileName(name));
      return new Uint8Array(await (await h.getFile()).arrayBuffer());
    } catch (e) {
      if ((e as DOMException)?.name === 'NotFoundError') return undefined;
      throw e;
    }
  }

  async delete(name: string): Promise<void> {
    const d = await this.dir();
    await d.removeEntry(stateFileName(name)).catch((e: DOMException) => {
      if (e?.name !== 'NotFoundError') throw e;
    });
  }

  async list(): Promise<{ name: string; bytes: number }[]> {
    const d = await this.dir();
    const out: { name: string; bytes: number }[] = [];
    for await (const key of (d as unknown as { keys(): AsyncIterable<string> }).keys()) {
      const name = snapshotName(key);
      if (name !== undefined) out.push({ name, bytes: (await (await d.getFileHandle(key)).getFile()).size });
    }
    return out;
  }
}
