import { describe, expect, it } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { enableJournal, openJournaled } from '../../../src/journal/open.js';
import { foldLog } from '../../../src/journal/checkpoint.js';

const BS = 64 * 1024;
const MiB = 1 << 20;
const SIZE = 16 * MiB;

async function fill(v: Volume, n: number, seed: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await v.write(((i * 7 + seed) % (SIZE / BS)) * BS, new Uint8Array(BS).fill((i + seed) % 251));
    if (i % 4 === 3) await v.flush();
  }
  await v.flush();
}

describe('write log size limit', () => {
  it('refuse: over the limit, writes fail with quota and write nothing; a checkpoint lets them in again; the policy survives reopening', async () => {
    const ns = new MemoryNamespace();
    const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
    const j = await enableJournal(v, ns, '');
    await j.setPolicy({ maxBytes: 4 * MiB, onFull: 'refuse' });
    expect(j.log.segmentBytes).toBe(MiB);
    let refused: unknown = null;
    let i = 0;
    for (; i < 400 && refused === null; i++) {
      try {
        await v.write((i % (SIZE / BS)) * BS, new Uint8Array(BS).fill(1 + (i % 250)));
        if (i % 4 === 3) await v.flush();
      } catch (e) {
        refused = e;
      }
    }
    expect(refused).toMatchObject({ code: 'quota', message: expect.stringContaining('journal checkpoint') });
    expect(j.status().full).toBe(true);
    // nothing was written: the volume still reads what the log's latest view says
    const before = await v.read(0, SIZE);
    expect(Buffer.from(before).equals(Buffer.from(await j.view('latest').read(0, SIZE)))).toBe(true);
    await expect(v.write(0, new Uint8Array(BS).fill(9))).rejects.toMatchObject({ code: 'quota' });
    expect(Buffer.from(await v.read(0, BS)).equals(Buffer.from(before.subarray(0, BS)))).toBe(true);
    const r = await foldLog(j, 'latest');
    expect(r.c).not.toBeNull();
    await Promise.resolve();
    expect(j.status().full).toBe(false);
    await v.write(0, new Uint8Array(BS).fill(9));
    await v.close();
    const { volume, journal } = await openJournaled(ns);
    expect(journal!.status().policy).toEqual({ maxBytes: 4 * MiB, onFull: 'refuse' });
    await volume.close();
  });

  it('fold (the default): the log stays near its limit by folding in the background; later points read the same', async () => {
    const ns = new MemoryNamespace();
    const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
    const j = await enableJournal(v, ns, '');
    await j.setPolicy({ maxBytes: 8 * MiB });
    await fill(v, 600, 3);
    await j.settled();
    const s = j.status();
    expect(s.foldError).toBeNull();
    expect(j.resolve('base')).toBeGreaterThan(-1);
    expect(s.bytes).toBeLessThan(8 * MiB + 2 * MiB);
    expect(Buffer.from(await j.view('latest').read(0, SIZE)).equals(Buffer.from(await v.read(0, SIZE)))).toBe(true);
    await v.close();
  });
});
