import { StrataError } from '../errors.js';
import type { Manifest } from '../format/manifest.js';
import type { StoreNamespace } from '../store/store.js';
import type { Layer } from './layer.js';
import type { VolumeReader } from './volume-reader.js';
import { mirrorObserver, type WriteMirror } from './write-mirror.js';
import type { ObserverHandle } from './write-observer.js';
import type { VolumeCore } from './core.js';
import { viewReader } from './views.js';

/**
 * What a block job (src/jobs) may do to an open volume while reads and writes go on. One job at
 * a time holds it; until `release()`, snapshot, revert and delete-snapshot fail with `locked`.
 */
export interface VolumeJobAccess {
  readonly ns: StoreNamespace;
  readonly blockSize: number;
  /** The live view, for the job's own reads (under the read lock; not counted as foreground I/O). */
  readonly view: VolumeReader;
  /** The volume's count of foreground reads, writes and flushes (see `Volume.foregroundOps`): jobs yield while it moves. */
  foregroundOps(): number;
  manifest(): Manifest;
  /** The open layer `id` (throws `not-found` once it is gone). */
  layer(id: string): Layer;
  /** Run `fn` with the volume's writes and flushes excluded (reads go on). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Inside `exclusive`: flush the active layer (the durability barrier of the volume). */
  flushActive(): Promise<void>;
  /** Inside `exclusive`: commit `m` as the new manifest and make reads and writes follow it. */
  commit(m: Manifest): Promise<void>;
  /** Inside `exclusive`, after a commit that no longer names `id`: close and delete its files. */
  dropLayerFiles(id: string): Promise<void>;
  /**
   * Send every write of the active layer to `mirror` too (null removes it): a thin wrapper that
   * attaches the mirror as one sync write observer (write-observer.ts), detached on release.
   */
  setMirror(mirror: WriteMirror | null): void;
  /** Inside `exclusive`: refuse every later write with `closed` and this message (the volume moved). */
  retire(reason: string): void;
  /** End the job's hold (also removes its mirror). Idempotent. */
  release(): void;
}

/**
 * Build the access of block job `kind` (Volume.beginJob): hold the volume's structure while
 * reads and writes go on. Fails with `locked` when another job holds it. See {@link VolumeJobAccess}.
 */
export function jobAccess(core: VolumeCore, kind: string): VolumeJobAccess {
  core.assertWritable();
  core.assertNoJob(`start a ${kind} job`);
  core.job = kind;
  let held = true;
  let mirrorHandle: ObserverHandle | null = null;
  const check = () => {
    if (!held) throw new StrataError('closed', `The ${kind} job no longer holds the volume.`);
    core.assertOpen();
  };
  return {
    ns: core.ns,
    blockSize: core.blockSize,
    view: viewReader(core, () => core.chain),
    foregroundOps: () => core.fgOps,
    manifest: () => core.manifest,
    layer: (id) => {
      check();
      const l = core.layers.get(id);
      if (!l) throw new StrataError('not-found', `Layer ${id} is no longer part of the volume.`);
      return l;
    },
    exclusive: (fn) => {
      check();
      return core.exclusive(fn);
    },
    flushActive: () => core.active.flush(),
    commit: async (m) => {
      check();
      await core.manifestStore.commit(m);
      core.rebuildChain();
    },
    dropLayerFiles: (id) => core.dropLayerFiles(id),
    retire: (reason) => {
      check();
      core.retired = reason;
    },
    setMirror: (mirror) => {
      check();
      void mirrorHandle?.detach();
      mirrorHandle = mirror ? core.observers.attach(mirrorObserver(mirror)) : null;
    },
    release: () => {
      if (!held) return;
      held = false;
      void mirrorHandle?.detach();
      mirrorHandle = null;
      core.job = null;
    },
  };
}
