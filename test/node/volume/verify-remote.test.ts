/** Verify on read for a copy-on-read volume: blocks fetched into the cache layer are checked too. */
import { afterEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { startImageServer, type ImageServer } from '../../../src/bench/image-server.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 16 * 1024;
const servers: ImageServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

describe('copy-on-read cache', () => {
  it('a damaged cached block is refused with checksum-mismatch, never served', async () => {
    const img = new Rng(4).bytes(24 * BS);
    const srv = await startImageServer(img);
    servers.push(srv);
    const ns = new MemoryNamespace();
    const v = await Volume.createFromImage(ns, srv.url, { blockSize: BS, remote: { backoffMs: 1, cacheFlushMs: 10 } });
    expect(equalBytes(await v.read(0, img.length), img)).toBe(true);
    await v.close();
    const cached = [...ns.files.entries()].filter(([n, f]) => n.endsWith('.data') && f.length > 0);
    expect(cached.length).toBe(1);
    const [, file] = cached[0]!;
    // the cache was filled in order: slot 7 holds block 7
    file.buf[7 * BS + 3] ^= 0x04;
    const w = await Volume.open(ns, { remote: { backoffMs: 1, cacheFlushMs: 10 } });
    for (const [off, len] of [[7 * BS + 100, 4096], [0, img.length], [7 * BS, BS]]) {
      const e = await w.read(off!, len!).then(
        () => null,
        (x: unknown) => x,
      );
      expect(isStrataError(e, 'checksum-mismatch'), String(e)).toBe(true);
      expect((e as Error).message).toContain(`bytes ${7 * BS}-${8 * BS - 1}`);
    }
    expect(equalBytes(await w.read(8 * BS, 4 * BS), img.subarray(8 * BS, 12 * BS))).toBe(true);
    await w.close();
  });
});
