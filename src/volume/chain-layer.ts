/** The reads a chain makes of its layers (src/volume/chain.ts): a Layer is one, so is a copy-on-read volume's remote base. */
import type { SparseBitmap } from '../wasm/index.js';

/**
 * What a chain needs of a layer: its ownership bitmap, the slot of a block (>= 0 data, negative
 * = known zero or absent) and a store to read slots from. A `Layer` is one; so is the remote
 * base of a copy-on-read volume (src/volume/remote-base.ts), whose slot of block b is b.
 * Layers that keep block checksums (`verified` and `hashRun`, see src/volume/verify.ts) have
 * every read checked against them.
 */
export interface ChainLayer {
  readonly id: string;
  readonly owned: SparseBitmap;
  slot(block: number): number;
  readonly data: ChainData;
  readonly verified?: SparseBitmap;
  hashRun?(first: number, count: number, out: Uint8Array, at?: number): void;
}

/** The reads a chain makes of a layer's data store (a Store satisfies it). */
export interface ChainData {
  readInto(offset: number, target: Uint8Array): Promise<void>;
  /** Optional synchronous read (see Store.readIntoNow): false when it declines. */
  readIntoNow?(offset: number, target: Uint8Array): boolean;
  /**
   * Optional, how the store does its I/O (a NodeFileStore has both): with `io` 'async' every
   * read runs in the background (libuv's thread pool); with 'sync', reads of at most
   * `syncMaxBytes` are blocking calls and larger ones run in the background. Long verified runs
   * are read in pieces only where the pieces run in the background too (src/volume/run-reader.ts).
   */
  readonly io?: string;
  readonly syncMaxBytes?: number;
}
