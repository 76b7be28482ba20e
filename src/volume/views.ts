import { extents } from './map.js';
import type { Chain } from './chain.js';
import type { VolumeCore } from './core.js';
import type { VolumeReader } from './volume-reader.js';

/** A read-only VolumeReader over whatever chain `chainNow` gives at the time of each call. */
export function viewReader(core: VolumeCore, chainNow: () => Chain): VolumeReader {
  return {
    size: core.size,
    blockSize: core.blockSize,
    async read(offset: number, length: number) {
      const t = new Uint8Array(length);
      await this.readInto(offset, t);
      return t;
    },
    async readInto(offset: number, target: Uint8Array) {
      core.assertOpen();
      core.checkIo(offset, target.length);
      const bs = core.blockSize;
      await core.locks.run(Math.floor(offset / bs), Math.ceil((offset + target.length) / bs), false, () => {
        core.assertOpen(); // again after any wait: close() holds every block, then releases the layers
        return chainNow().readInto(offset, target);
      });
    },
    readIntoNow(offset: number, target: Uint8Array) {
      core.assertOpen();
      core.checkIo(offset, target.length);
      const bs = core.blockSize;
      return core.locks.sharable(Math.floor(offset / bs), Math.ceil((offset + target.length) / bs)) && chainNow().readIntoNow(offset, target);
    },
    async map(offset?: number, length?: number) {
      core.assertOpen();
      const [from, to] = core.mapRange(offset, length);
      return core.shared(async () => extents(chainNow(), core.size, from, to));
    },
  };
}
