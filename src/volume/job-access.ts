import type { Manifest } from '../format/manifest.js';
import type { StoreNamespace } from '../store/store.js';
import type { Layer } from './layer.js';
import type { VolumeReader } from './volume-reader.js';
import type { WriteMirror } from './write-mirror.js';

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
