/**
 * The worker host under Node worker_threads, driven through the public client. Node cannot run
 * the TypeScript sources in a worker, so the worker is the built `dist/worker/entry-node.js`
 * (`npm test` builds first); the client runs from source. Rebuild (`npm run build:ts`) after
 * changing src/worker when running this file alone.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { StrataClient, type ProgressEvent } from '../../../src/worker/client.js';

const dist = fileURLToPath(new URL('../../../dist/worker/', import.meta.url));
const entryNode = join(dist, 'entry-node.js');
const entry = join(dist, 'entry.js');
const built = existsSync(entryNode) && existsSync(entry);
if (!built) console.warn(`skipping worker_threads tests: ${entryNode} is missing; run \`npm run build\` first`);

const KiB = 1024;
const MiB = 1024 * KiB;

const workers: Worker[] = [];
function spawn(file = entryNode): StrataClient {
  const w = new Worker(file);
  workers.push(w);
  return StrataClient.connect(w);
}

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

function pattern(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < length; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[i] = x & 0xff;
  }
  return out;
}

async function rejectsWithCode(p: Promise<unknown>, code: string): Promise<StrataError> {
  const e = await p.then(
    () => {
      throw new Error(`expected a ${code} error, but it resolved`);
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(StrataError);
  expect((e as StrataError).code).toBe(code);
  return e as StrataError;
}

describe.skipIf(!built)('worker host under worker_threads', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-worker-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the Volume API on a memory volume: write, read, snapshot, revert, map, check, info', async () => {
    const c = spawn();
    const v = await c.createVolume({ backend: 'memory', path: 'disk' }, { size: 4 * MiB, blockSize: 4 * KiB });
    expect([v.size, v.blockSize, v.readOnly]).toEqual([4 * MiB, 4 * KiB, false]);
    const a = pattern(64 * KiB, 1);
    await v.write(8 * KiB, a.slice());
    await v.write(100, pattern(10, 2)); // partial block
    expect(await v.read(8 * KiB, 64 * KiB)).toEqual(a);
    expect(await v.read(100, 10)).toEqual(pattern(10, 2));
    await v.flush();

    const s1 = await v.snapshot('s1');
    expect(s1.name).toBe('s1');
    await v.write(8 * KiB, new Uint8Array(4 * KiB).fill(9));
    await v.writeZeroes(12 * KiB, 4 * KiB);
    expect((await v.read(8 * KiB, 4 * KiB)).every((b) => b === 9)).toBe(true);
    expect((await v.read(12 * KiB, 4 * KiB)).every((b) => b === 0)).toBe(true);

    const snap = await v.openSnapshot('s1');
    expect(snap.size).toBe(4 * MiB);
    expect(await snap.read(8 * KiB, 64 * KiB)).toEqual(a);
    const snapMap = await snap.map();
    expect(snapMap.some((e) => e.data && e.start <= 8 * KiB && e.start + e.length >= 72 * KiB)).toBe(true);

    const map = await v.map();
    expect(map.reduce((n, e) => n + e.length, 0)).toBe(4 * MiB);
    expect(map.find((e) => e.start === 12 * KiB)?.zero).toBe(true);

    const info = await v.info();
    expect(info.snapshots.map((s) => s.name)).toEqual(['s1']);
    expect(info.chain.length).toBe(2);
    expect((await v.snapshots()).map((s) => s.name)).toEqual(['s1']);

    const events: ProgressEvent[] = [];
    const report = await v.check({ onProgress: (e) => events.push(e) });
    expect(report.ok).toBe(true);
    expect(report.blocksChecked).toBeGreaterThan(0);
    // every progress event arrived before the result
    expect(events.at(-1)).toEqual({ done: report.blocksChecked, total: report.blocksChecked });

    await v.revert('s1');
    expect(await v.read(8 * KiB, 64 * KiB)).toEqual(a);
    await v.snapshot('s2');
    await v.deleteSnapshot('s1');
    expect((await v.snapshots()).map((s) => s.name)).toEqual(['s2']);
    // the snapshot view follows its snapshot: deleted => not-found
    await rejectsWithCode(snap.read(0, 1), 'not-found');
    await snap.close();
    expect(await v.read(8 * KiB, 64 * KiB)).toEqual(a);

    await v.close();
    await rejectsWithCode(v.read(0, 1), 'closed');
    // the memory volume outlives its handle for the worker's lifetime
    const again = await c.openVolume({ backend: 'memory', path: 'disk' });
    expect(await again.read(8 * KiB, 64 * KiB)).toEqual(a);
    await c.close();
  });

  it('serves several volumes (and snapshot views) from one worker', async () => {
    const c = spawn();
    const vols = await Promise.all(
      [0, 1, 2].map((i) => c.createVolume({ backend: 'memory', path: `multi/${i}` }, { size: MiB, blockSize: 4 * KiB })),
    );
    const nd = await c.createVolume({ backend: 'node-dir', path: join(dir, 'multi-nd') }, { size: MiB, blockSize: 4 * KiB });
    const all = [...vols, nd];
    await Promise.all(all.map((v, i) => v.write(0, pattern(16 * KiB, 10 + i))));
    await Promise.all(all.map((v) => v.snapshot('base')));
    await Promise.all(all.map((v, i) => v.write(0, pattern(16 * KiB, 20 + i))));
    const views = await Promise.all(all.map((v) => v.openSnapshot('base')));
    for (let i = 0; i < all.length; i++) {
      expect(await all[i]!.read(0, 16 * KiB)).toEqual(pattern(16 * KiB, 20 + i));
      expect(await views[i]!.read(0, 16 * KiB)).toEqual(pattern(16 * KiB, 10 + i));
    }
    expect(await c.listVolumes('memory', 'multi')).toEqual(['multi/0', 'multi/1', 'multi/2']);
    expect(await c.listVolumes('node-dir', dir)).toContain(join(dir, 'multi-nd'));
    await c.close();
    // closing the client closed every volume: the node-dir writer lock is free again
    const c2 = spawn();
    const nd2 = await c2.openVolume({ backend: 'node-dir', path: join(dir, 'multi-nd') });
    expect(await nd2.read(0, 16 * KiB)).toEqual(pattern(16 * KiB, 23));
    await c2.close();
  });

  it('keeps node-dir volumes across workers; deleteVolume removes them', async () => {
    const spec = { backend: 'node-dir' as const, path: join(dir, 'persist') };
    const c1 = spawn();
    const v1 = await c1.createVolume(spec, { size: 2 * MiB });
    expect(v1.blockSize).toBe(64 * KiB);
    await v1.write(123_456, pattern(300 * KiB, 5));
    await v1.snapshot('one');
    await v1.close();
    await c1.close();

    const c2 = spawn(entry); // entry.js forwards to entry-node.js under Node
    const v2 = await c2.openVolume(spec, { readOnly: true });
    expect(v2.readOnly).toBe(true);
    expect(await v2.read(123_456, 300 * KiB)).toEqual(pattern(300 * KiB, 5));
    expect((await v2.snapshots()).map((s) => s.name)).toEqual(['one']);
    expect((await v2.check()).ok).toBe(true);
    await rejectsWithCode(c2.deleteVolume(spec), 'locked'); // open in this worker
    await v2.close();
    await c2.deleteVolume(spec);
    expect(existsSync(spec.path)).toBe(false);
    await c2.deleteVolume(spec); // idempotent
    await rejectsWithCode(c2.openVolume(spec), 'not-found');
    await c2.close();
  });

  it('keeps error codes across the boundary', async () => {
    const c = spawn();
    const spec = { backend: 'node-dir' as const, path: join(dir, 'errors') };
    const v = await c.createVolume(spec, { size: MiB, blockSize: 4 * KiB });
    const e = await rejectsWithCode(v.read(MiB - 1, 2), 'out-of-range');
    expect(e.message).toMatch(/past the end/);
    expect(e.stack).toMatch(/across the worker boundary/);
    await rejectsWithCode(v.write(MiB, new Uint8Array(1)), 'out-of-range');
    await rejectsWithCode(v.read(0, -1), 'invalid-argument');
    await rejectsWithCode(v.read(0, 2 ** 60), 'invalid-argument'); // never allocates
    await rejectsWithCode(c.createVolume(spec, { size: MiB }), 'exists');
    await rejectsWithCode(c.createVolume({ backend: 'memory', path: 'x' }, { size: MiB, blockSize: 1000 }), 'invalid-argument');
    await rejectsWithCode(c.openVolume({ backend: 'memory', path: 'nope' }), 'not-found');
    await rejectsWithCode(c.openVolume({ backend: 'node-dir', path: join(dir, 'nope') }), 'not-found');
    await rejectsWithCode(v.openSnapshot('nope'), 'not-found');
    await rejectsWithCode(v.revert('nope'), 'not-found');
    await rejectsWithCode(c.openVolume({ backend: 'opfs', path: 'x' }), 'unsupported');

    // one writer: a second writable open is `locked`, in this worker and in another one
    await rejectsWithCode(c.openVolume(spec), 'locked');
    const other = spawn();
    await rejectsWithCode(other.openVolume(spec), 'locked');
    // ... but a read-only open is fine, and refuses writes with `read-only`
    const ro = await other.openVolume(spec, { readOnly: true });
    await rejectsWithCode(ro.write(0, new Uint8Array(4)), 'read-only');
    await rejectsWithCode(ro.snapshot('s'), 'read-only');
    await other.close();

    // memory volumes have the same rule
    const m = await c.createVolume({ backend: 'memory', path: 'm' }, { size: MiB });
    await rejectsWithCode(c.openVolume({ backend: 'memory', path: 'm' }), 'locked');
    await m.close();
    await c.close();
    await rejectsWithCode(c.openVolume(spec), 'closed');
  });

  it('moves bytes by transfer: write detaches a whole buffer, copies a partial view', async () => {
    const c = spawn();
    const v = await c.createVolume({ backend: 'memory', path: 'transfer' }, { size: MiB, blockSize: 4 * KiB });
    const whole = pattern(8 * KiB, 3);
    const expected = whole.slice();
    const buffer = whole.buffer;
    await v.write(0, whole);
    expect(buffer.byteLength).toBe(0); // detached: it moved to the worker
    expect(whole.length).toBe(0);
    expect(await v.read(0, 8 * KiB)).toEqual(expected);

    const big = pattern(16 * KiB, 4);
    const part = big.subarray(4 * KiB, 8 * KiB);
    await v.write(4 * KiB, part);
    expect(big.buffer.byteLength).toBe(16 * KiB); // a partial view is copied, not detached
    expect(await v.read(4 * KiB, 4 * KiB)).toEqual(big.subarray(4 * KiB, 8 * KiB));

    const r = await v.read(0, 4 * KiB);
    expect(r.byteOffset).toBe(0);
    expect(r.buffer.byteLength).toBe(4 * KiB); // exactly the transferred buffer
    await c.close();
  });

  it('cancels a running check with an AbortSignal', async () => {
    const c = spawn();
    const v = await c.createVolume({ backend: 'node-dir', path: join(dir, 'cancel') }, { size: 256 * MiB, blockSize: 64 * KiB });
    const chunk = pattern(8 * MiB, 7);
    for (let at = 0; at < 128 * MiB; at += 8 * MiB) await v.write(at, chunk.slice());
    await v.flush();
    const ctrl = new AbortController();
    const events: ProgressEvent[] = [];
    await rejectsWithCode(
      v.check({
        signal: ctrl.signal,
        onProgress: (e) => {
          events.push(e);
          ctrl.abort();
        },
      }),
      'aborted',
    );
    expect(events.length).toBeGreaterThan(0);
    expect(events.at(-1)!.done).toBeLessThan(events.at(-1)!.total);
    // the volume is still usable, and a check runs to the end without a signal
    expect((await v.check()).ok).toBe(true);
    await rejectsWithCode(v.check({ signal: AbortSignal.abort() }), 'aborted');
    await c.close();
    expect(await readdir(join(dir, 'cancel'))).not.toContain('.stratadisk.lock');
  });

  it('reports storage as zeros under Node', async () => {
    const c = spawn();
    expect(await c.storage()).toEqual({ usage: 0, quota: 0, persisted: false });
    expect(await c.persist()).toBe(false);
    await c.close();
  });

  it('lets several clients share a worker; closing one leaves the others served', async () => {
    const w = new Worker(entryNode);
    workers.push(w);
    const a = StrataClient.connect(w);
    const b = StrataClient.connect(w);
    const va = await a.createVolume({ backend: 'memory', path: 'shared-a' }, { size: MiB });
    const vb = await b.createVolume({ backend: 'memory', path: 'shared-b' }, { size: MiB });
    await va.write(0, pattern(4 * KiB, 1));
    await a.close();
    await rejectsWithCode(va.read(0, 1), 'closed');
    await vb.write(0, pattern(4 * KiB, 2));
    expect(await vb.read(0, 4 * KiB)).toEqual(pattern(4 * KiB, 2));
    // a's volume was closed in the worker (its lock is free); memory volumes outlive handles
    const c = StrataClient.connect(w);
    expect(await (await c.openVolume({ backend: 'memory', path: 'shared-a' })).read(0, 4 * KiB)).toEqual(pattern(4 * KiB, 1));
    await Promise.all([b.close(), c.close()]);
  });
});
