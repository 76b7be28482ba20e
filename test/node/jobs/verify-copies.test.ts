/**
 * Verify on read (issue 12, item 1) beyond plain reads: copies to another volume refuse damaged
 * blocks; merges carry a damaged block with its original checksum (never laundered); the worker
 * API rejects with the same code.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { mirror } from '../../../src/jobs/mirror.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { StrataClient } from '../../../src/worker/client.js';
import { tempDir } from '../cli/harness.js';
import { flipBytes } from '../helpers/damage.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 16 * 1024;
const SIZE = 64 * BS;

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** L000001 holds blocks 0..31 in slots 0..31 (snapshot `base`); the live layer holds 40..43; block 5 is damaged. */
async function damaged(ns: MemoryNamespace): Promise<Uint8Array> {
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const rng = new Rng(5);
  const live = new Uint8Array(SIZE);
  live.set(rng.bytes(32 * BS));
  await v.write(0, live.subarray(0, 32 * BS));
  await v.snapshot('base');
  live.set(rng.bytes(4 * BS), 40 * BS);
  await v.write(40 * BS, live.subarray(40 * BS, 44 * BS));
  await v.close();
  ns.files.get('L000001.data')!.buf[5 * BS + 77] ^= 0x10;
  return live;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e as StrataError).code,
  );
}

describe('copies and merges of a damaged volume', () => {
  it('a mirror (layer by layer, and flattened) fails with checksum-mismatch; the source goes on', async () => {
    for (const flatten of [false, true]) {
      const ns = new MemoryNamespace();
      const live = await damaged(ns);
      const vol = await Volume.open(ns);
      const job = mirror(vol, new MemoryNamespace(), { flatten });
      expect(await codeOf(job.done)).toBe('checksum-mismatch');
      // the source still serves its good data and takes writes
      expect(equalBytes(await vol.read(6 * BS, 26 * BS), live.subarray(6 * BS, 32 * BS))).toBe(true);
      await vol.write(5 * BS, new Uint8Array(BS).fill(3));
      expect((await vol.read(5 * BS, BS)).every((b) => b === 3)).toBe(true);
      await vol.close();
    }
  });

  it('deleting a snapshot merges a damaged block with its original checksum: still refused on read, still found by check', async () => {
    const ns = new MemoryNamespace();
    const live = await damaged(ns);
    const vol = await Volume.open(ns);
    await vol.deleteSnapshot('base');
    expect(vol.snapshots()).toEqual([]);
    expect(await codeOf(vol.read(5 * BS, 100))).toBe('checksum-mismatch');
    expect(equalBytes(await vol.read(0, 5 * BS), live.subarray(0, 5 * BS))).toBe(true);
    const report = await vol.check();
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => [p.code, p.block])).toEqual([['checksum-mismatch', 5]]);
    await vol.close();
  });
});

const entryNode = fileURLToPath(new URL('../../../dist/worker/entry-node.js', import.meta.url));

describe.skipIf(!existsSync(entryNode))('the worker API on a damaged volume', () => {
  it('rejects a read of the damaged block with checksum-mismatch and serves the rest', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const dir = join(t.dir, 'vol');
    const v = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size: SIZE, blockSize: BS });
    const data = new Rng(9).bytes(8 * BS);
    await v.write(0, data);
    await v.close();
    flipBytes(join(dir, 'L000001.data'), 2 * BS + 9);
    const w = new Worker(entryNode);
    cleanups.push(() => w.terminate().then(() => {}));
    const c = StrataClient.connect(w);
    const vol = await c.openVolume({ backend: 'node-dir', path: dir });
    const e = await vol.read(2 * BS, 4096).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(StrataError);
    expect((e as StrataError).code).toBe('checksum-mismatch');
    expect((e as StrataError).message).toContain('layer L000001');
    expect(equalBytes(await vol.read(3 * BS, 5 * BS), data.subarray(3 * BS))).toBe(true);
  });
});
