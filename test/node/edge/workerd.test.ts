/**
 * The edge worker in real workerd (miniflare 4, its R2 emulation): images published into the R2
 * bucket through the R2 adapter, then read through the worker with every Range form, validators,
 * HEAD, both kinds of URL, refused paths, the Cache API, and damaged packs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerd, type Workerd } from '../../../src/bench/edge-workerd.ts';
import { R2ObjectStore, type R2BucketLike } from '../../../src/transfer/r2-objects.ts';
import { publish } from '../../../src/transfer/publish.ts';
import { KiB, makeVolume, MiB, sameBytes } from '../transfer/fixtures.ts';

const ENTRY = new URL('../../../src/edge/workerd.ts', import.meta.url).pathname;
const DEMO = new URL('../../../demo/edge/worker.js', import.meta.url).pathname;
const RAW_SOURCE = new URL('./workers/raw-source-worker.ts', import.meta.url).pathname;
const SIZE = 3 * MiB + 12345;
const BS = 64 * KiB;

let w: Workerd;
let model: Uint8Array;
let model2: Uint8Array;
let v1 = '';
let v2 = '';
let other = '';
let bucket: R2BucketLike;

beforeAll(async () => {
  w = await startWorkerd([
    { name: 'edge', entry: ENTRY },
    { name: 'nocache', entry: ENTRY, vars: { EDGE_CACHE: 'off' } },
    { name: 'prefixed', entry: ENTRY, vars: { EDGE_BUCKET: 'DISKS', EDGE_PREFIX: 'pub/v1', EDGE_TAG_MAX_AGE: '5' }, bucketBinding: 'DISKS' },
    { name: 'unbound', entry: ENTRY, vars: { EDGE_BUCKET: 'NOPE' } },
    { name: 'stream', entry: RAW_SOURCE, vars: { PIECE: String(64 * KiB), FAIL_AT: String(5 * 64 * KiB + 1) } },
    // the deployable example: `export { default } from 'stratadisk/edge'`, resolved through the package's exports (built dist/)
    { name: 'demo', entry: DEMO },
  ]);
  bucket = (await w.bucket()) as unknown as R2BucketLike;
  const objects = new R2ObjectStore(bucket);
  const a = await makeVolume(SIZE, BS, { seed: 3 });
  model = a.model;
  v1 = (await publish(objects, a.vol, { image: 'disk', tag: 'latest' })).contentId;
  await publish(new R2ObjectStore(bucket, { prefix: 'pub/v1' }), a.vol, { image: 'disk' });
  const b = await makeVolume(SIZE, BS, { seed: 4 });
  model2 = b.model;
  v2 = (await publish(objects, b.vol, { image: 'disk', tag: 'v2' })).contentId;
  other = (await publish(objects, b.vol, { image: 'other', tag: 'latest', created: new Date('2026-01-02T00:00:00Z') })).contentId;
  await a.vol.close();
  await b.vol.close();
}, 120_000);

afterAll(async () => {
  await w?.dispose();
});

const get = (worker: string, path: string, headers: Record<string, string> = {}, method = 'GET') => w.fetch(worker, `http://edge.test${path}`, { method, headers });
const bytesOf = async (r: Response) => new Uint8Array(await r.arrayBuffer());

describe('edge worker in workerd', () => {
  it('serves every Range form of a tag and of a content ID with the published bytes', async () => {
    const cases: [string, number, number][] = [
      ['bytes=0-0', 0, 1],
      [`bytes=${BS - 10}-${3 * BS + 9}`, BS - 10, 3 * BS + 10],
      [`bytes=${SIZE - 5000}-`, SIZE - 5000, SIZE],
      ['bytes=-777', SIZE - 777, SIZE],
      [`bytes=100-${SIZE * 4}`, 100, SIZE],
      ['bytes=-99999999999', 0, SIZE],
    ];
    for (const worker of ['edge', 'nocache']) {
      for (const path of ['/disk/latest', `/disk/@${v1}`]) {
        for (const [h, s, e] of cases) {
          const r = await get(worker, path, { Range: h });
          expect(r.status, `${worker} ${path} ${h}`).toBe(206);
          expect(r.headers.get('content-range')).toBe(`bytes ${s}-${e - 1}/${SIZE}`);
          expect(r.headers.get('content-length')).toBe(String(e - s));
          expect(sameBytes(await bytesOf(r), model.subarray(s, e)), `${worker} ${path} ${h}`).toBe(true);
        }
      }
    }
    const whole = await get('nocache', '/disk/v2');
    expect(whole.status).toBe(200);
    expect(whole.headers.get('content-length')).toBe(String(SIZE));
    expect(sameBytes(await bytesOf(whole), model2)).toBe(true);
    const multi = await get('nocache', `/disk/@${v1}`, { Range: 'bytes=0-1,100-200' });
    expect(multi.status).toBe(200);
    expect(sameBytes(await bytesOf(multi), model)).toBe(true);
  });

  it('the deployable example (demo/edge/worker.js, one line importing stratadisk/edge) serves the image', async () => {
    const r = await get('demo', '/disk/latest', { Range: 'bytes=123456-234566' });
    expect(r.status).toBe(206);
    expect(r.headers.get('etag')).toBe(`"${v1}"`);
    expect(sameBytes(await bytesOf(r), model.subarray(123456, 234567))).toBe(true);
  });

  it('416 with bytes */SIZE for ranges past the end and bytes=-0', async () => {
    for (const h of [`bytes=${SIZE}-`, `bytes=${SIZE + 10}-${SIZE + 20}`, 'bytes=-0', 'bytes=123456789012345678901234567890-']) {
      const r = await get('edge', '/disk/latest', { Range: h });
      expect(r.status, h).toBe(416);
      expect(r.headers.get('content-range')).toBe(`bytes */${SIZE}`);
      await r.arrayBuffer();
    }
  });

  it('ETag is the version content ID; If-None-Match → 304, If-Range with an old tag → 200 of the current version', async () => {
    const r = await get('edge', '/disk/latest', { Range: 'bytes=0-9' });
    expect(r.headers.get('etag')).toBe(`"${v1}"`);
    await r.arrayBuffer();
    const nm = await get('edge', '/disk/latest', { 'If-None-Match': `"${v1}"` });
    expect(nm.status).toBe(304);
    expect((await bytesOf(nm)).length).toBe(0);
    const changed = await get('edge', '/disk/v2', { 'If-None-Match': `"${v1}"` });
    expect(changed.status).toBe(200);
    await changed.arrayBuffer();
    const keep = await get('edge', '/disk/v2', { Range: 'bytes=10-19', 'If-Range': `"${v2}"` });
    expect(keep.status).toBe(206);
    expect(sameBytes(await bytesOf(keep), model2.subarray(10, 20))).toBe(true);
    const moved = await get('nocache', '/disk/v2', { Range: 'bytes=10-19', 'If-Range': `"${v1}"` });
    expect(moved.status).toBe(200);
    expect(sameBytes(await bytesOf(moved), model2)).toBe(true);
    expect((await get('edge', '/disk/latest', { 'If-Match': `"${v2}"` })).status).toBe(412);
  });

  it('HEAD: headers without a body; Cache-Control immutable on content IDs, short on tags; CORS for any page', async () => {
    const h = await get('edge', `/disk/@${v1}`, {}, 'HEAD'); // (miniflare itself refuses requests with a foreign Origin)
    expect(h.status).toBe(200);
    expect(h.headers.get('content-length')).toBe(String(SIZE));
    expect(h.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(h.headers.get('access-control-allow-origin')).toBe('*');
    expect(h.headers.get('access-control-expose-headers')).toBe('Accept-Ranges, Content-Length, Content-Range, ETag');
    expect((await bytesOf(h)).length).toBe(0);
    const t = await get('edge', '/disk/latest', {}, 'HEAD');
    expect(t.headers.get('cache-control')).toBe('public, max-age=60');
    const p = await get('prefixed', '/disk/latest', {}, 'HEAD');
    expect(p.status).toBe(200);
    expect(p.headers.get('cache-control')).toBe('public, max-age=5');
    const pr = await get('prefixed', '/disk/latest', { Range: 'bytes=70000-70099' });
    expect(sameBytes(await bytesOf(pr), model.subarray(70000, 70100))).toBe(true);
  });

  it('404 for bucket keys, .., other shapes, an unknown image or tag, and another image\'s version; 405 for other methods', async () => {
    const keys: string[] = [];
    for (const o of (await bucket.list({ prefix: '' })).objects) keys.push(o.key);
    expect(keys.some((k) => k.startsWith('packs/'))).toBe(true);
    for (const k of keys.slice(0, 30)) {
      const r = await get('edge', `/${k}`);
      expect(r.status, k).toBe(404);
      await r.arrayBuffer();
    }
    for (const p of ['/', '/disk', '/disk/', '/disk/..', '/../packs', '/disk/%2e%2e', '/disk/latest/', `/versions/@${v1}`, '/disk/nosuchtag', '/nosuch/latest', `/other/@${v1}`, `/disk/@${other}`, `/disk/@${'0'.repeat(64)}`]) {
      const r = await get('edge', p);
      expect(r.status, p).toBe(404);
      await r.arrayBuffer();
    }
    const ok = await get('edge', `/other/@${other}`, { Range: 'bytes=0-3' });
    expect(ok.status).toBe(206);
    await ok.arrayBuffer();
    for (const m of ['POST', 'PUT', 'DELETE']) {
      const r = await get('edge', '/disk/latest', {}, m);
      expect(r.status).toBe(405);
      await r.arrayBuffer();
    }
    const unbound = await get('unbound', '/disk/latest');
    expect(unbound.status).toBe(500);
    await unbound.arrayBuffer();
  });

  it('a flipped byte in a pack: 502 with none of the version\'s bytes, or a cut body, never wrong bytes; a span verified before is served from the Cache API', async () => {
    // one span into the cache while the pack is intact
    const span = `bytes=${10 * BS}-${11 * BS - 1}`;
    const warm = await get('edge', `/disk/@${v1}`, { Range: span });
    expect(warm.headers.get('x-stratadisk-cache')).toBe('miss');
    expect(sameBytes(await bytesOf(warm), model.subarray(10 * BS, 11 * BS))).toBe(true);
    // the cache put runs in waitUntil, after the answer: wait until the span is there (a condition, not a time)
    for (let i = 0; ; i++) {
      const again = await get('edge', `/disk/@${v1}`, { Range: span });
      await again.arrayBuffer();
      if (again.headers.get('x-stratadisk-cache') === 'hit') break;
      if (i > 300) throw new Error('the span never reached the cache');
      await new Promise((r) => setTimeout(r, 50));
    }
    const packs = (await bucket.list({ prefix: 'packs/' })).objects.filter((o) => o.key.endsWith('.pack'));
    const saved = new Map<string, Uint8Array>();
    for (const p of packs) {
      const data = new Uint8Array(await (await bucket.get(p.key))!.arrayBuffer());
      saved.set(p.key, data.slice());
      for (let i = 1000; i < data.length; i += 256 * KiB) data[i]! ^= 0x01; // every chunk's pack range is damaged somewhere
      await bucket.put(p.key, data);
    }
    try {
      let errors = 0;
      for (let b = 0; b * BS < SIZE; b += 3) {
        const r = await get('nocache', `/disk/@${v1}`, { Range: `bytes=${b * BS}-${Math.min(SIZE, (b + 1) * BS) - 1}` });
        if (r.status === 206) {
          expect(sameBytes(await bytesOf(r), model.subarray(b * BS, Math.min(SIZE, (b + 1) * BS)))).toBe(true);
        } else {
          expect(r.status).toBe(502);
          expect(r.headers.get('content-type')).toMatch(/^text\/plain/);
          expect((await r.text()).length).toBeLessThan(200);
          errors++;
        }
      }
      expect(errors).toBeGreaterThan(0);
      const whole = await get('nocache', `/disk/@${v1}`);
      if (whole.status === 200) await expect(whole.arrayBuffer()).rejects.toThrow();
      else expect(whole.status).toBe(502);
      const cached = await get('edge', `/disk/@${v1}`, { Range: span });
      expect(cached.status).toBe(206);
      expect(cached.headers.get('x-stratadisk-cache')).toBe('hit');
      expect(sameBytes(await bytesOf(cached), model.subarray(10 * BS, 11 * BS))).toBe(true);
    } finally {
      for (const [k, d] of saved) await bucket.put(k, d);
    }
  });

  it('a read that fails mid-body in workerd cuts the body short (the client errors) after only right bytes', async () => {
    const data = new Uint8Array(1 * MiB).map((_, i) => (i * 31) & 255);
    await bucket.put('raw.img', data);
    const r = await get('stream', '/raw/latest');
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(String(data.length));
    const reader = r.body!.getReader();
    const got: Uint8Array[] = [];
    let failed = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got.push(value);
      }
    } catch {
      failed = true;
    }
    expect(failed).toBe(true);
    const all = Buffer.concat(got);
    expect(all.length).toBeLessThanOrEqual(5 * 64 * KiB);
    expect(sameBytes(all, data.subarray(0, all.length))).toBe(true);
  });
});
