/**
 * Copy-on-read volumes over a local HTTP server: reads fetch once and land in the cache layer,
 * writes go to the overlay, per-block state (remote / clean / modified), reset, refresh to a new
 * image version, image-changed, flaky servers, and persistence across reopen (offline after stream).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { startImageServer, type ImageServer, type ImageServerOptions } from '../../../src/bench/image-server.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng, equalBytes, firstDiff } from '../helpers/random.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const servers: ImageServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

function image(size: number, seed: number): Uint8Array {
  const rng = new Rng(seed);
  const img = rng.bytes(size);
  // some zero blocks, so known-zero cache entries are exercised
  img.fill(0, 3 * 16 * KiB, 5 * 16 * KiB);
  return img;
}

async function serve(img: Uint8Array, options: ImageServerOptions = {}): Promise<ImageServer> {
  const s = await startImageServer(img, options);
  servers.push(s);
  return s;
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect(isStrataError(e), String(e)).toBe(true);
    expect((e as { code: string }).code, (e as Error).message).toBe(code);
    return;
  }
  throw new Error(`expected error ${code}`);
}

const fast = { backoffMs: 1, cacheFlushMs: 10 };

describe('copy-on-read volume over HTTP', () => {
  it('reads match the image, fetch each block once, keep writes local; state per block; survives reopen', async () => {
    const bs = 16 * KiB;
    const size = 40 * bs + 1234; // a partial last block
    const img = image(size, 1);
    const srv = await serve(img);
    const ns = new MemoryNamespace();
    const v = await Volume.createFromImage(ns, srv.url, { blockSize: bs, remote: fast });
    expect(v.size).toBe(size);
    expect(v.manifest.remote).toMatchObject({ url: srv.url, size, etag: '"v1"' });
    let p = v.info().remote!;
    expect(p.remoteBytes).toBe(size);
    expect(p.localBytes).toBe(0);

    const model = img.slice();
    expect(equalBytes(await v.read(5 * bs + 100, 3 * bs), model.subarray(5 * bs + 100, 8 * bs + 100))).toBe(true);
    const before = srv.requests;
    expect(equalBytes(await v.read(5 * bs + 100, 3 * bs), model.subarray(5 * bs + 100, 8 * bs + 100))).toBe(true);
    expect(srv.requests).toBe(before); // now local
    p = v.info().remote!;
    expect(p.cleanBlocks).toBe(4);
    expect(p.localBytes).toBe(4 * bs);

    // a partial write of a remote block copies it up (fetch), then the overlay holds it
    const w = new Rng(2).bytes(300);
    await v.write(20 * bs + 7, w);
    model.set(w, 20 * bs + 7);
    await v.write(30 * bs, new Uint8Array(bs)); // zero block over image data: known-zero in the overlay
    model.fill(0, 30 * bs, 31 * bs);
    p = v.info().remote!;
    expect(p.modifiedBlocks).toBe(2);
    expect(equalBytes(await v.read(0, size), model), `first diff ${firstDiff(await v.read(0, size), model)}`).toBe(true);
    expect(v.info().remote!.remoteBytes).toBe(0);
    await v.close();

    // reopen: fetched blocks and writes are there; nothing is fetched again
    const reqs = srv.requests;
    const v2 = await Volume.open(ns, { remote: fast });
    expect(equalBytes(await v2.read(0, size), model)).toBe(true);
    expect(srv.requests).toBe(reqs);
    const i = v2.info().remote!;
    expect(i.remoteBytes).toBe(0);
    expect(i.modifiedBlocks).toBe(2);
    expect((await v2.check()).ok).toBe(true);

    // reset: the live volume reads as the image again; only block 30 (overwritten whole, so
    // never fetched) comes from the server
    await v2.reset();
    expect(equalBytes(await v2.read(0, size), img)).toBe(true);
    expect(v2.info().remote!.modifiedBlocks).toBe(0);
    expect(srv.requests).toBe(reqs + 1);
    await v2.close();
  });

  it('works offline once everything is local; a remote block offline fails with a clear error', async () => {
    const bs = 16 * KiB;
    const img = image(8 * bs, 3);
    const srv = await serve(img);
    const ns = new MemoryNamespace();
    const v = await Volume.createFromImage(ns, srv.url, { blockSize: bs, remote: fast });
    await v.read(0, 4 * bs);
    await v.close();
    await srv.close();
    servers.length = 0;
    const off = await Volume.open(ns, { remote: { ...fast, retries: 1, timeoutMs: 2000 } });
    expect(equalBytes(await off.read(0, 4 * bs), img.subarray(0, 4 * bs))).toBe(true);
    await expectCode(off.read(6 * bs, 10), 'io');
    await off.close();
  });

  it('snapshots and revert work over a remote base; refresh drops clean blocks and keeps modified ones', async () => {
    const bs = 16 * KiB;
    const size = 16 * bs;
    const img1 = image(size, 4);
    const srv = await serve(img1);
    const ns = new MemoryNamespace();
    const v = await Volume.createFromImage(ns, srv.url, { blockSize: bs, remote: fast });
    const a = new Rng(5).bytes(bs);
    await v.write(2 * bs, a);
    await v.snapshot('s1');
    await v.write(3 * bs, a);
    await v.read(0, size);
    expect(v.info().remote!.cleanBlocks).toBe(14);

    // the server publishes a new version: reads of remote blocks now fail with image-changed
    const img2 = image(size, 6);
    srv.setImage(img2);
    await v.revert('s1');
    expect(await v.remote!.refresh()).toBe(true);
    const p = v.info().remote!;
    expect(p.etag).toBe('"v2"');
    expect(p.cleanBlocks).toBe(0);
    expect(p.modifiedBlocks).toBe(1);
    const want = img2.slice();
    want.set(a, 2 * bs);
    expect(equalBytes(await v.read(0, size), want)).toBe(true);
    const snap = v.openSnapshot('s1');
    expect(equalBytes(await snap.read(2 * bs, bs), a)).toBe(true);
    expect(await v.remote!.refresh()).toBe(false);
    await v.close();
    const v2 = await Volume.open(ns, { remote: fast });
    expect(equalBytes(await v2.read(0, size), want)).toBe(true);
    expect((await v2.check()).ok).toBe(true);
    await v2.close();
  });

  it('a changed image fails with image-changed, never with bytes of the new version', async () => {
    const bs = 16 * KiB;
    const img = image(16 * bs, 7);
    for (const noEtag of [false, true]) {
      const srv = await serve(img, { noEtag });
      const v = await Volume.createFromImage(new MemoryNamespace(), srv.url, { blockSize: bs, remote: fast });
      await v.read(0, bs);
      srv.setImage(image(16 * bs, 8));
      await expectCode(v.read(4 * bs, bs), 'image-changed');
      // what was fetched before is still served
      expect(equalBytes(await v.read(0, bs), img.subarray(0, bs))).toBe(true);
      await v.close();
    }
  });

  it('survives slow answers and connections cut mid-body (retries resume), fetching correct data', async () => {
    const bs = 16 * KiB;
    const img = image(64 * bs, 9);
    const srv = await serve(img, { dropEvery: 2, delayMs: 5 });
    const v = await Volume.createFromImage(new MemoryNamespace(), srv.url, { blockSize: bs, remote: fast });
    const rng = new Rng(10);
    for (let i = 0; i < 30; i++) {
      const off = rng.int(img.length - 3 * bs);
      const len = rng.range(1, 3 * bs);
      expect(equalBytes(await v.read(off, len), img.subarray(off, off + len))).toBe(true);
    }
    expect(v.info().remote!.http.retries).toBeGreaterThan(0);
    await v.close();
  });

  it('a server that ignores Range is refused at creation with unsupported', async () => {
    const srv = await serve(image(64 * KiB, 11), { ignoreRange: true });
    await expectCode(Volume.createFromImage(new MemoryNamespace(), srv.url, { remote: fast }), 'unsupported');
  });

  it('concurrent reads of the same blocks fetch them once; sequential reads read ahead', async () => {
    const bs = 4 * KiB;
    const img = image(256 * bs, 12);
    const srv = await serve(img, { delayMs: 10 });
    const v = await Volume.createFromImage(new MemoryNamespace(), srv.url, { blockSize: bs, remote: fast });
    const reads = [];
    for (let i = 0; i < 8; i++) reads.push(v.read(10 * bs + i * 100, 2 * bs));
    for (const r of await Promise.all(reads)) expect(r.length).toBe(2 * bs);
    expect(srv.requests).toBeLessThanOrEqual(3); // probe + one fetch (+ one if a read's range went a block further)
    const before = srv.requests;
    for (let b = 100; b < 164; b++) expect(equalBytes(await v.read(b * bs, 512), img.subarray(b * bs, b * bs + 512))).toBe(true);
    expect(srv.requests - before).toBeLessThan(16);
    await v.close();
  });

  it('a read-only open reads through without caching', async () => {
    const bs = 16 * KiB;
    const img = image(8 * bs, 13);
    const srv = await serve(img);
    const ns = new MemoryNamespace();
    await (await Volume.createFromImage(ns, srv.url, { blockSize: bs, remote: fast })).close();
    const ro = await Volume.open(ns, { readOnly: true, remote: fast });
    expect(equalBytes(await ro.read(0, 8 * bs), img)).toBe(true);
    expect(ro.info().remote!.localBytes).toBe(0);
    await expectCode(ro.reset(), 'read-only');
    await ro.close();
  });
});
