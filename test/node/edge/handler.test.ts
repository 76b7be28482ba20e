import { describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.ts';
import { createEdgeHandler } from '../../../src/edge/handler.ts';
import type { CacheLike, VersionRef, VersionSource } from '../../../src/edge/source.ts';
import { createVersionCache } from '../../../src/edge/version-cache.ts';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.ts';
import { publish } from '../../../src/transfer/publish.ts';
import { openPublishedVersion } from '../../../src/transfer/published-version.ts';
import { KiB, makeVolume, MiB, sameBytes } from '../transfer/fixtures.ts';

const CID = 'c'.repeat(64);
const OTHER = 'd'.repeat(64);
const BASE = 'http://edge.test';

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A version in memory; `failAt` makes reads that touch that offset throw 'checksum-mismatch'. */
function memorySource(data: Uint8Array, opts: { contentId?: string; image?: string; failAt?: number } = {}): VersionSource & { reads: [number, number][] } {
  const reads: [number, number][] = [];
  return {
    contentId: opts.contentId ?? CID,
    image: opts.image ?? 'disk',
    size: data.length,
    reads,
    async read(offset, length) {
      reads.push([offset, length]);
      if (opts.failAt !== undefined && offset <= opts.failAt && opts.failAt < offset + length) throw new StrataError('checksum-mismatch', 'chunk does not match its name');
      return data.slice(offset, offset + length);
    },
  };
}

function handlerOver(source: VersionSource, extra: Partial<Parameters<typeof createEdgeHandler>[0]> = {}) {
  const opened: VersionRef[] = [];
  const handler = createEdgeHandler({
    async open(ref) {
      opened.push(ref);
      if (ref.image !== 'disk' && ref.image !== source.image) throw new StrataError('not-found', 'no such image');
      if ('tag' in ref) {
        if (ref.tag !== 'latest') throw new StrataError('not-found', 'no such tag');
        return source;
      }
      if (ref.contentId !== source.contentId) throw new StrataError('not-found', 'no such version');
      return source;
    },
    ...extra,
  });
  return { handler, opened, get: (path: string, headers: Record<string, string> = {}, method = 'GET') => handler(new Request(BASE + path, { method, headers })) };
}

async function body(r: Response): Promise<Uint8Array> {
  return new Uint8Array(await r.arrayBuffer());
}

describe('edge handler: HTTP semantics over an in-memory version', () => {
  const data = bytes(300_000);

  it('GET of a tag and of a content ID: 200, the bytes, and the headers of each kind of URL', async () => {
    const { get } = handlerOver(memorySource(data));
    const t = await get('/disk/latest');
    expect(t.status).toBe(200);
    expect(sameBytes(await body(t), data)).toBe(true);
    expect(t.headers.get('etag')).toBe(`"${CID}"`);
    expect(t.headers.get('accept-ranges')).toBe('bytes');
    expect(t.headers.get('content-length')).toBe(String(data.length));
    expect(t.headers.get('content-type')).toBe('application/octet-stream');
    expect(t.headers.get('cache-control')).toBe('public, max-age=60');
    expect(t.headers.get('access-control-allow-origin')).toBe('*');
    expect(t.headers.get('access-control-expose-headers')).toMatch(/Content-Range/);
    const c = await get(`/disk/@${CID}`);
    expect(c.status).toBe(200);
    expect(c.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(sameBytes(await body(c), data)).toBe(true);
  });

  it('serves the three range forms with 206 and Content-Range, and 416 with bytes */SIZE', async () => {
    const { get } = handlerOver(memorySource(data));
    for (const [h, s, e] of [['bytes=0-0', 0, 1], ['bytes=1000-70000', 1000, 70001], ['bytes=299990-', 299990, 300000], ['bytes=-17', 299983, 300000], ['bytes=5-999999999', 5, 300000]] as const) {
      const r = await get(`/disk/@${CID}`, { Range: h });
      expect(r.status, h).toBe(206);
      expect(r.headers.get('content-range')).toBe(`bytes ${s}-${e - 1}/300000`);
      expect(r.headers.get('content-length')).toBe(String(e - s));
      expect(sameBytes(await body(r), data.subarray(s, e)), h).toBe(true);
    }
    for (const h of ['bytes=300000-', 'bytes=-0', 'bytes=999999999999999999999-']) {
      const r = await get('/disk/latest', { Range: h });
      expect(r.status, h).toBe(416);
      expect(r.headers.get('content-range')).toBe('bytes */300000');
    }
    const multi = await get('/disk/latest', { Range: 'bytes=0-1,10-11' });
    expect(multi.status).toBe(200);
    expect((await body(multi)).length).toBe(300000);
  });

  it('HEAD: the GET headers (200 or 206) and no body, without reading the version', async () => {
    const src = memorySource(data);
    const { get } = handlerOver(src);
    const h = await get('/disk/latest', {}, 'HEAD');
    expect(h.status).toBe(200);
    expect(h.headers.get('content-length')).toBe('300000');
    expect((await body(h)).length).toBe(0);
    const r = await get('/disk/latest', { Range: 'bytes=10-19' }, 'HEAD');
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe('bytes 10-19/300000');
    expect(src.reads).toEqual([]);
  });

  it('If-None-Match → 304 (no body), If-Match → 412, If-Range with the tag keeps the range and with another tag sends 200', async () => {
    const { get } = handlerOver(memorySource(data));
    const nm = await get('/disk/latest', { 'If-None-Match': `"${CID}"` });
    expect(nm.status).toBe(304);
    expect(nm.headers.get('etag')).toBe(`"${CID}"`);
    expect((await body(nm)).length).toBe(0);
    expect((await get('/disk/latest', { 'If-None-Match': `"${OTHER}"` })).status).toBe(200);
    expect((await get('/disk/latest', { 'If-Match': `"${OTHER}"` })).status).toBe(412);
    const ir = await get('/disk/latest', { Range: 'bytes=0-9', 'If-Range': `"${CID}"` });
    expect(ir.status).toBe(206);
    const moved = await get('/disk/latest', { Range: 'bytes=0-9', 'If-Range': `"${OTHER}"` });
    expect(moved.status).toBe(200);
    expect((await body(moved)).length).toBe(300000);
  });

  it('404 for every path that is not /IMAGE/TAG or /IMAGE/@ID, and for another image\'s version', async () => {
    const { get, opened } = handlerOver(memorySource(data));
    for (const p of ['/', '/disk', '/disk/', '/disk/latest/', '/disk/latest/x', `/versions/${CID}`.replace('versions', 'versions/x'), '/packs', '/disk/%2e%2e', '/disk/..%2Fpacks', '/%2e%2e/latest', '/disk/@abc', `/disk/@${CID.toUpperCase()}`, `/disk/${'a'.repeat(129)}`, '/di$k/latest', '/disk/lat%20est']) {
      const r = await get(p);
      expect(r.status, p).toBe(404);
    }
    expect(opened).toEqual([]);
    // the routes parse, the store says no
    expect((await get('/other/latest')).status).toBe(404);
    expect((await get('/disk/v2')).status).toBe(404);
    // a bucket key in tag form is only ever looked up as images/packs/tags/<name>
    expect((await get(`/packs/${CID}.pack`)).status).toBe(404);
    expect((await get(`/disk/@${OTHER}`)).status).toBe(404);
    // a version of image "disk" is not served under image "other"
    const { get: get2 } = handlerOver(memorySource(data, { image: 'disk' }), {});
    const other = await get2(`/other/@${CID}`);
    expect(other.status).toBe(404);
  });

  it('405 for other methods (with Allow), 204 for a CORS preflight', async () => {
    const { get } = handlerOver(memorySource(data));
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await get('/disk/latest', {}, m);
      expect(r.status, m).toBe(405);
      expect(r.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
    }
    const p = await get('/disk/latest', { Origin: 'https://app.example', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'range' }, 'OPTIONS');
    expect(p.status).toBe(204);
    expect(p.headers.get('access-control-allow-origin')).toBe('*');
    expect(p.headers.get('access-control-allow-headers')).toMatch(/Range/);
  });

  it('CORS with a list of origins: a listed Origin is echoed (Vary: Origin), another gets no CORS headers; [] gives none', async () => {
    const { get } = handlerOver(memorySource(data), { allowOrigin: ['https://app.example'] });
    const ok = await get('/disk/latest', { Origin: 'https://app.example', Range: 'bytes=0-0' });
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(ok.headers.get('vary')).toBe('Origin');
    const no = await get('/disk/latest', { Origin: 'https://evil.example', Range: 'bytes=0-0' });
    expect(no.status).toBe(206);
    expect(no.headers.get('access-control-allow-origin')).toBeNull();
    const pre = await get('/disk/latest', { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'GET' }, 'OPTIONS');
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const { get: none } = handlerOver(memorySource(data), { allowOrigin: [] });
    expect((await none('/disk/latest', { Origin: 'https://app.example', Range: 'bytes=0-0' })).headers.get('access-control-allow-origin')).toBeNull();
  });

  it('a version that fails verification before the first byte: 502 and none of its bytes', async () => {
    const { get } = handlerOver(memorySource(data, { failAt: 100 }));
    const r = await get('/disk/latest', { Range: 'bytes=0-1000' });
    expect(r.status).toBe(502);
    expect(r.headers.get('content-type')).toMatch(/text\/plain/);
    expect(r.headers.get('content-range')).toBeNull();
    expect(r.headers.get('etag')).toBeNull();
  });

  it('a piece that fails mid-stream aborts the body: the reader gets an error, and every byte before it is right', async () => {
    const piece = 64 * KiB;
    const { get } = handlerOver(memorySource(data, { failAt: 3 * piece + 5 }), { pieceBytes: piece });
    const r = await get('/disk/latest');
    expect(r.status).toBe(200);
    const reader = r.body!.getReader();
    const got: Uint8Array[] = [];
    let error: unknown;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        got.push(value);
      }
    } catch (e) {
      error = e;
    }
    expect(error).toBeDefined();
    const all = Buffer.concat(got);
    expect(all.length).toBeLessThan(data.length);
    expect(sameBytes(all, data.subarray(0, all.length))).toBe(true);
  });

  it('streams a large range in bounded pieces, never one read of the whole span', async () => {
    const big = bytes(5 * MiB + 3, 7);
    const src = memorySource(big);
    const { get } = handlerOver(src, { pieceBytes: 1 * MiB });
    const r = await get('/disk/latest', { Range: 'bytes=1-' });
    expect(sameBytes(await body(r), big.subarray(1))).toBe(true);
    expect(Math.max(...src.reads.map(([, n]) => n))).toBeLessThanOrEqual(1 * MiB);
    expect(src.reads.length).toBe(6);
  });

  it('with a cache: verified spans are stored by content ID and served again without reading; tag lookups are cached with the tag TTL', async () => {
    const store = new Map<string, Response>();
    const cache: CacheLike = {
      async match(req) {
        return store.get(req.url)?.clone();
      },
      async put(req, res) {
        store.set(req.url, new Response(await res.arrayBuffer(), { status: res.status, headers: res.headers }));
      },
    };
    const src = memorySource(data);
    const { get, opened } = handlerOver(src, { cache });
    const a = await get('/disk/latest', { Range: 'bytes=100-199' });
    expect(sameBytes(await body(a), data.subarray(100, 200))).toBe(true);
    await new Promise((r) => setTimeout(r, 10));
    const reads = src.reads.length;
    const b = await get(`/disk/@${CID}`, { Range: 'bytes=100-199' });
    expect(b.status).toBe(206);
    expect(b.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(sameBytes(await body(b), data.subarray(100, 200))).toBe(true);
    expect(src.reads.length).toBe(reads);
    const tagKey = [...store.keys()].find((k) => k.includes('?stratadisk-tag='))!;
    expect(store.get(tagKey)!.headers.get('cache-control')).toBe('public, max-age=60');
    await get('/disk/latest', { Range: 'bytes=0-9' });
    expect(opened.filter((r) => 'tag' in r).length).toBe(1); // the second tag request used the cached lookup
  });
});

describe('edge handler over a published version (memory object store)', () => {
  it('serves the published bytes; a flipped pack byte gives 502, never the wrong bytes', async () => {
    const size = 2 * MiB + 4096;
    const { vol, model } = await makeVolume(size, 64 * KiB);
    const objects = new MemoryObjectStore();
    const r = await publish(objects, vol, { image: 'disk' });
    await vol.close();
    const handler = createEdgeHandler({ open: createVersionCache({ open: (ref, signal) => openPublishedVersion(objects, 'contentId' in ref ? { contentId: ref.contentId } : ref, { signal }) }) });
    const res = await handler(new Request(`${BASE}/disk/latest`, { headers: { Range: 'bytes=65530-200000' } }));
    expect(res.status).toBe(206);
    expect(res.headers.get('etag')).toBe(`"${r.contentId}"`);
    expect(sameBytes(await body(res), model.subarray(65530, 200001))).toBe(true);
    const whole = await handler(new Request(`${BASE}/disk/@${r.contentId}`));
    expect(sameBytes(await body(whole), model)).toBe(true);
    // flip one byte of every pack
    for (const [k, o] of objects.objects) if (k.endsWith('.pack')) o.data[Math.floor(o.data.length / 2)] ^= 1;
    let served = 0;
    for (let off = 0; off < size; off += 64 * KiB) {
      const x = await handler(new Request(`${BASE}/disk/@${r.contentId}`, { headers: { Range: `bytes=${off}-${off + 64 * KiB - 1}` } }));
      if (x.status === 206) {
        expect(sameBytes(await body(x), model.subarray(off, Math.min(size, off + 64 * KiB)))).toBe(true);
        served++;
      } else {
        expect(x.status).toBe(502);
        expect((await x.text()).length).toBeLessThan(200);
      }
    }
    expect(served).toBeLessThan(Math.ceil(size / (64 * KiB)));
  });
});
