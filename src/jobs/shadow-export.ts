/**
 * Export a shadow copy to a Store as a sparse raw image: a job (progress, pause, cancel, rate
 * limit) that reads the copy in 4 MiB pieces, the next piece read while the last is written,
 * and writes only pieces that are not all zeros; the target is then sized to the volume, so a
 * file gets holes where the copy is zero.
 */
import { BaseJob, type JobOptions } from './job.js';
import type { Store } from '../store/store.js';
import { isZero } from '../wasm/index.js';
import type { ShadowCopyReader } from '../shadow/read-path.js';

const PIECE = 4 << 20;

export class ShadowExportJob extends BaseJob {
  /** bytes written (pieces that were not all zeros) */
  dataBytes = 0;

  constructor(
    private readonly copy: ShadowCopyReader,
    private readonly target: Store,
    options: JobOptions = {},
  ) {
    super('shadow-export', options);
    this.start();
  }

  protected async run(): Promise<void> {
    const size = this.copy.size;
    this.setTotal(size);
    // A device keeps whatever it held, so zeros are written there; a file gets holes.
    const sparse = this.target.resizable;
    if (sparse) await this.target.truncate(0);
    const bufs = [new Uint8Array(Math.min(PIECE, size)), new Uint8Array(Math.min(PIECE, size))];
    const load = async (k: number): Promise<Uint8Array> => {
      const at = k * PIECE;
      const chunk = bufs[k % 2]!.subarray(0, Math.min(PIECE, size - at));
      await this.copy.readInto(at, chunk);
      return chunk;
    };
    const pieces = Math.ceil(size / PIECE);
    let next = pieces > 0 ? load(0) : undefined;
    for (let k = 0; k < pieces; k++) {
      const chunk = await next!;
      next = k + 1 < pieces ? load(k + 1) : undefined;
      next?.catch(() => {});
      if (!sparse || !isZero(chunk)) {
        await this.target.write(k * PIECE, chunk);
        this.dataBytes += chunk.length;
      }
      await this.step(chunk.length);
    }
    if (sparse) await this.target.truncate(size);
    await this.target.flush();
  }
}
