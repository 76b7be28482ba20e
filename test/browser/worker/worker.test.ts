/**
 * The worker host in real Chromium: a module Worker running src/worker/entry.ts (bundled by
 * Vite), driven from the page through StrataClient. Memory first, then OPFS and IndexedDB.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { StrataClient, type BackendSpec, type ProgressEvent } from '../../../src/worker/client.js';
import { newWorker, pattern, rejectsWithCode, uniquePath } from './helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const workers: Worker[] = [];
function spawn(): { worker: Worker; client: StrataClient } {
  const worker = newWorker();
  workers.push(worker);
  return { worker, client: StrataClient.connect(worker) };
}

afterEach(() => {
  for (const w of workers.splice(0)) w.terminate();
});

describe('worker host in Chromium', () => {
  it('serves a memory volume: I/O, snapshots, map, check with progress, info', async () => {
    const { client } = spawn();
    const v = await client.createVolume({ backend: 'memory', path: 'm' }, { size: 8 * MiB, blockSize: 4 * KiB });
    const a = pattern(256 * KiB, 1);
    await v.write(4 * KiB, a.slice());
    expect(await v.read(4 * KiB, 256 * KiB)).toEqual(a);
    await v.snapshot('s1');
    await v.writeZeroes(4 * KiB, 8 * KiB);
    const s1 = await v.openSnapshot('s1');
    expect(await s1.read(4 * KiB, 256 * KiB)).toEqual(a);
    expect((await v.read(4 * KiB, 8 * KiB)).every((b) => b === 0)).toBe(true);
    expect((await v.map()).reduce((n, e) => n + e.length, 0)).toBe(8 * MiB);
    const events: ProgressEvent[] = [];
    const report = await v.check({ onProgress: (e) => events.push(e) });
    expect(report.ok).toBe(true);
    expect(events.at(-1)).toEqual({ done: report.blocksChecked, total: report.blocksChecked });
    expect((await v.info()).snapshots.map((s) => s.name)).toEqual(['s1']);
    await v.revert('s1');
    expect(await v.read(4 * KiB, 256 * KiB)).toEqual(a);

    // transfer: a whole buffer is detached by write; read answers with a buffer of its own
    const whole = pattern(4 * KiB, 2);
    await v.write(0, whole);
    expect(whole.buffer.byteLength).toBe(0);
    const back = await v.read(0, 4 * KiB);
    expect(back.buffer.byteLength).toBe(4 * KiB);
    expect(back).toEqual(pattern(4 * KiB, 2));

    // errors keep their code
    await rejectsWithCode(v.read(8 * MiB, 1), 'out-of-range');
    await rejectsWithCode(v.openSnapshot('nope'), 'not-found');
    await rejectsWithCode(client.openVolume({ backend: 'memory', path: 'm' }), 'locked');
    await rejectsWithCode(client.openVolume({ backend: 'node-dir', path: '/tmp/x' }), 'unsupported');
    await client.close();
  });

  it('reports storage usage and quota from the worker', async () => {
    const { client } = spawn();
    const s = await client.storage();
    expect(s.quota).toBeGreaterThan(0);
    expect(typeof s.persisted).toBe('boolean');
    expect(typeof (await client.persist())).toBe('boolean');
    await client.close();
  });

  for (const backend of ['opfs', 'idb'] as const) {
    it(`keeps a ${backend} volume across workers; one writer; read-only opens; delete`, async () => {
      const spec: BackendSpec = { backend, path: uniquePath(`worker-${backend}`) };
      const one = spawn();
      const v = await one.client.createVolume(spec, { size: 16 * MiB, blockSize: 16 * KiB });
      const a = pattern(1 * MiB, 3);
      await v.write(5 * KiB, a.slice());
      await v.snapshot('s');
      await v.write(0, pattern(16 * KiB, 4));
      await v.flush();

      // a second worker: writable open is `locked`, read-only works and sees flushed data
      const two = spawn();
      await rejectsWithCode(two.client.openVolume(spec), 'locked');
      const ro = await two.client.openVolume(spec, { readOnly: true });
      expect(await ro.read(5 * KiB + 16 * KiB, 64 * KiB)).toEqual(a.subarray(16 * KiB, 80 * KiB));
      await rejectsWithCode(ro.write(0, new Uint8Array(1)), 'read-only');
      await ro.close();

      await one.client.close();
      const three = spawn();
      const v3 = await three.client.openVolume(spec);
      expect(await v3.read(0, 16 * KiB)).toEqual(pattern(16 * KiB, 4));
      const snap = await v3.openSnapshot('s');
      expect(await snap.read(5 * KiB, 1 * MiB)).toEqual(a);
      expect((await v3.check()).ok).toBe(true);
      await rejectsWithCode(three.client.deleteVolume(spec), 'locked');
      await v3.close();
      await three.client.deleteVolume(spec);
      await rejectsWithCode(three.client.openVolume(spec), 'not-found');
      await three.client.close();
    });
  }

  it('is a StrataError on the page', async () => {
    const { client } = spawn();
    const e = await client.openVolume({ backend: 'memory', path: 'none' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StrataError);
    expect((e as StrataError).code).toBe('not-found');
    await client.close();
  });
});
