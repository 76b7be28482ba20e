/**
 * HttpStore against local HTTP servers: the read side of the Store contract, coalescing,
 * read-ahead, pinning (image-changed), retries and resumption, timeouts, and a seeded fuzz of
 * hostile answers (status, Content-Range, validators, lengths, cut and overlong bodies) that
 * must end in the right bytes or an error with a code, never in wrong bytes or a hang.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { startImageServer, type ImageServer, type ImageServerOptions } from '../../../src/bench/image-server.js';
import { HttpStore, parseContentRange } from '../../../src/store/http.js';
import { Rng } from '../helpers/random.js';
import { equalBytes, errorCode, pattern, readOnlyStoreConformance } from './conformance.js';

const LONG = process.env.STRATADISK_LONG === '1';
const servers: ImageServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});
async function serve(img: Uint8Array, options: ImageServerOptions = {}): Promise<ImageServer> {
  const s = await startImageServer(img, options);
  servers.push(s);
  return s;
}

const IMG = pattern(300_000, 1);
for (const [label, opts, srvOpts] of [
  ['HttpStore', {}, {}],
  ['HttpStore (read-ahead 64 KiB, coalesce gap 4 KiB, 16 KiB requests)', { readAhead: 64 << 10, coalesceGap: 4096, maxRequestBytes: 16 << 10 }, {}],
  ['HttpStore (server cutting every 3rd answer)', { backoffMs: 1 }, { dropEvery: 3 }],
] as const) {
  readOnlyStoreConformance(label, async () => {
    const srv = await startImageServer(IMG, srvOpts);
    return { open: () => HttpStore.open(srv.url, opts), contents: IMG, cleanup: () => srv.close() };
  });
}

describe('HttpStore', () => {
  it('pins size and validators at open; fromPin sends nothing until a read', async () => {
    const srv = await serve(IMG);
    const s = await HttpStore.open(srv.url);
    expect(s.pin).toMatchObject({ url: srv.url, size: IMG.length, etag: '"v1"' });
    expect(typeof s.pin.lastModified).toBe('string');
    const before = srv.requests;
    const p = HttpStore.fromPin(s.pin);
    expect(srv.requests).toBe(before);
    equalBytes(await p.read(10, 10), IMG.subarray(10, 20), 'fromPin read');
    await expect(HttpStore.open(srv.url, { expect: { size: 5 } })).rejects.toMatchObject({ code: 'image-changed' });
    await expect(HttpStore.open('ftp://x/y')).rejects.toMatchObject({ code: 'invalid-argument' });
    await s.close();
    await p.close();
  });

  it('coalesces reads issued together into one request and splits at maxRequestBytes', async () => {
    const srv = await serve(IMG);
    const s = await HttpStore.open(srv.url, { maxRequestBytes: 64 << 10 });
    srv.log.length = 0;
    const parts = await Promise.all([s.read(1000, 1000), s.read(0, 1000), s.read(2000, 5000), s.read(50_000, 10)]);
    expect(srv.log).toEqual([[0, 6999], [50_000, 50_009]]);
    equalBytes(parts[0]!, IMG.subarray(1000, 2000), 'coalesced');
    srv.log.length = 0;
    await s.read(0, 200_000);
    expect(srv.log.length).toBe(4);
    await s.close();
  });

  it('reads ahead on sequential reads', async () => {
    const srv = await serve(IMG);
    const s = await HttpStore.open(srv.url, { readAhead: 64 << 10 });
    const before = srv.requests;
    for (let off = 0; off < 128 << 10; off += 4096) equalBytes(await s.read(off, 4096), IMG.subarray(off, off + 4096), `seq ${off}`);
    expect(srv.requests - before).toBeLessThanOrEqual(4);
    expect(s.stats.readAheadHits).toBeGreaterThan(20);
    await s.close();
  });

  it('fails with image-changed when the image changes mid-way (by ETag, or by Last-Modified without one)', async () => {
    for (const noEtag of [false, true]) {
      const srv = await serve(IMG, { noEtag });
      const s = await HttpStore.open(srv.url);
      equalBytes(await s.read(0, 100), IMG.subarray(0, 100), 'before');
      srv.setImage(pattern(IMG.length, 2));
      expect(await errorCode(s.read(100, 100))).toBe('image-changed');
      srv.setImage(pattern(1000, 3));
      expect(await errorCode(s.read(100, 100))).toBe('image-changed');
      await s.close();
    }
  });

  it('a server ignoring Range: unsupported at open, corrupt on a pinned read; 404 is not-found', async () => {
    const srv = await serve(IMG, { ignoreRange: true });
    expect(await errorCode(HttpStore.open(srv.url))).toBe('unsupported');
    const s = HttpStore.fromPin({ url: srv.url, size: IMG.length, etag: '"v1"' });
    expect(await errorCode(s.read(0, 10))).toBe('corrupt');
    await s.close();
    const gone = await serve(IMG, { intercept: (_q, r) => (r.writeHead(404).end(), true) });
    expect(await errorCode(HttpStore.open(gone.url))).toBe('not-found');
  });

  it('retries 5xx with back-off, then gives io; a slow server gives timeout; cancel gives aborted', async () => {
    let n = 0;
    const flaky = await serve(IMG, { intercept: (_q, r) => (n++ % 2 === 0 ? (r.writeHead(503).end(), true) : false) });
    const s = await HttpStore.open(flaky.url, { backoffMs: 1 });
    equalBytes(await s.read(5, 50), IMG.subarray(5, 55), 'after 503');
    expect(s.stats.retries).toBeGreaterThan(0);
    const down = await serve(IMG, { intercept: (_q, r) => (r.writeHead(500).end(), true) });
    expect(await errorCode(HttpStore.open(down.url, { backoffMs: 1, retries: 2 }))).toBe('io');
    const slow = await serve(IMG, { delayMs: 400 });
    const t = await HttpStore.open(slow.url, { timeoutMs: 5000 });
    const t2 = HttpStore.fromPin(t.pin, { timeoutMs: 50, retries: 1, backoffMs: 1 });
    expect(await errorCode(t2.read(0, 10))).toBe('timeout');
    const ac = new AbortController();
    const t3 = HttpStore.fromPin(t.pin, { signal: ac.signal });
    const p = t3.read(0, 10);
    ac.abort();
    expect(await errorCode(p)).toBe('aborted');
    for (const x of [s, t, t2, t3]) await x.close();
  });

  it('never reads more body than Content-Range announced', async () => {
    const srv = await serve(IMG, {
      intercept: (req, res, range) => {
        if (!range || range.last === 0) return false;
        res.writeHead(206, { 'Content-Range': `bytes ${range.first}-${range.last}/${IMG.length}`, ETag: '"v1"' });
        res.write(IMG.subarray(range.first, range.last + 1));
        res.end(new Uint8Array(100_000)); // far more than asked
        return true;
      },
    });
    const s = await HttpStore.open(srv.url, { retries: 0 });
    expect(await errorCode(s.read(0, 1000))).toBe('corrupt');
    await s.close();
  });

  it('parses Content-Range strictly', () => {
    expect(parseContentRange('bytes 0-0/10')).toEqual({ first: 0, last: 0, total: 10 });
    expect(parseContentRange('bytes 5-9/*')).toEqual({ first: 5, last: 9, total: null });
    expect(parseContentRange('bytes */10')).toEqual({ first: -1, last: -1, total: 10 });
    for (const bad of ['bytes 9-5/10', 'bytes 0-10/10', 'bytes 0-1', 'bytes=0-1/2', 'items 0-1/2', 'bytes -1-2/3', 'bytes 0-99999999999999999/1', '']) {
      expect(parseContentRange(bad), bad).toBeNull();
    }
  });

  it(`fuzz: hostile answers give the right bytes or an error with a code (${LONG ? 5000 : 300} seeded cases)`, async () => {
    const img = pattern(40_000, 9);
    let rng = new Rng(0);
    const mutate = { on: true };
    const srv = await serve(img, {
      intercept: (req, res, range) => {
        if (!mutate.on || !range || rng.next() < 0.4) return false;
        const { first, last } = range;
        const cl = last - first + 1;
        let status = rng.pick([206, 206, 206, 200, 416, 500, 412, 404, 302, 204]);
        let crFirst = first;
        let crLast = last;
        let total: number | string = img.length;
        const h: Record<string, string> = {};
        switch (rng.int(8)) {
          case 0: crFirst += rng.range(-3, 4); break;
          case 1: crLast += rng.range(-3, 4); break;
          case 2: total = rng.pick([img.length + 1, img.length - 1, 0, '*', 'x']); break;
          case 3: h['Content-Range'] = rng.pick(['', 'bytes', `bytes ${first}-${last}`, `bytes=${first}-${last}/${img.length}`, 'garbage']); break;
          case 4: status = 206; break;
          default: break;
        }
        h['Content-Range'] ??= `bytes ${crFirst}-${crLast}/${total}`;
        const etag = rng.int(6);
        if (etag === 0) h.ETag = '"other"';
        else if (etag !== 1) h.ETag = '"v1"';
        // The body is what the (possibly lying) Content-Range claims, so only header checks can catch a lie.
        const a = Math.max(0, Math.min(img.length, crFirst));
        const b = Math.max(a, Math.min(img.length, crLast + 1));
        let body = img.subarray(a, b);
        const bodyMode = rng.int(5);
        if (bodyMode === 0) body = body.subarray(0, rng.int(body.length + 1));
        if (bodyMode === 1) h['Content-Length'] = String(cl + rng.range(-2, 3));
        try {
          res.writeHead(status, h);
        } catch {
          res.writeHead(500);
        }
        if (status === 204 || status === 304) return res.end(), true;
        if (bodyMode === 2) {
          res.write(body.subarray(0, body.length >> 1), () => res.destroy());
          return true;
        }
        if (bodyMode === 3) {
          res.write(body);
          res.end(pattern(rng.range(1, 50), 4));
          return true;
        }
        res.end(body);
        return true;
      },
    });
    mutate.on = false;
    const pin = (await HttpStore.open(srv.url)).pin;
    mutate.on = true;
    const cases = LONG ? 5000 : 300;
    const codes = new Map<string, number>();
    let okCount = 0;
    for (let c = 0; c < cases; c++) {
      rng = new Rng(1000 + c);
      const s = HttpStore.fromPin(pin, { retries: 2, backoffMs: 0, timeoutMs: 3000, maxRequestBytes: rng.pick([1000, 8192, 65536]) });
      const off = rng.int(img.length - 1);
      const len = 1 + rng.int(Math.min(20_000, img.length - off));
      try {
        const got = await s.read(off, len);
        equalBytes(got, img.subarray(off, off + len), `case ${c}: returned bytes`);
        okCount++;
      } catch (e) {
        if (!isStrataError(e)) throw new Error(`case ${c}: not a StrataError: ${String(e)}`, { cause: e });
        expect(['corrupt', 'image-changed', 'io', 'timeout', 'not-found'], `case ${c}: ${e.message}`).toContain(e.code);
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      } finally {
        await s.close();
      }
    }
    expect(okCount).toBeGreaterThan(cases / 10);
    expect(codes.size).toBeGreaterThanOrEqual(3);
  });
});
