import type { Extent } from './map.js';

/** Something you can read blocks of: the live volume or one of its snapshots. */
export interface VolumeReader {
  readonly size: number;
  readonly blockSize: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  readInto(offset: number, target: Uint8Array): Promise<void>;
  /**
   * Optional: readInto without a promise when it can be done at once (no write holds or awaits
   * the volume, and the stores read synchronously); false, with `target` in any state, means
   * "use readInto". Servers use it to answer reads in the turn that received them.
   */
  readIntoNow?(offset: number, target: Uint8Array): boolean;
  /** Extents of the whole view, or of [offset, offset+length) when given. */
  map(offset?: number, length?: number): Promise<Extent[]>;
}
