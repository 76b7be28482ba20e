import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Miniflare } from 'miniflare';
import { createBLAKE3 } from 'hash-wasm';

// The kernels in real workerd (through miniflare), which refuses to compile WebAssembly from
// bytes at run time: the worker imports build/kernels.wasm as a module (compiled when the worker
// is loaded, as on Cloudflare) and passes it to loadKernels(). Uses the built dist/ (npm test
// builds it first). workerd needs compatibility_date >= 2025-05-05 for FinalizationRegistry
// (flag enable_weak_ref), which src/wasm/bytes.ts uses.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const kernelLoader = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { imports: { '#kernel-loader': { workerd: string } } }).imports['#kernel-loader'];
const WORKER = `
import kernelsWasm from './build/kernels.wasm';
import { loadKernels, blake3, blake3Chunks, xxh3_64 } from './dist/wasm/index.js';
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/compile-bytes') {
      try { await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])); return new Response('compiled'); }
      catch (e) { return new Response('refused: ' + e.message); }
    }
    if (url.pathname === '/load-without-module') {
      try { await loadKernels(); return new Response('loaded'); }
      catch (e) { return new Response('failed: ' + e.code); }
    }
    await loadKernels(kernelsWasm);
    const body = new Uint8Array(await request.arrayBuffer());
    return Response.json({ hash: hex(blake3(body)), chunks: hex(blake3Chunks(body, 4096)), xxh3: xxh3_64(new Uint8Array(0)).toString(16) });
  },
};`;

let mf: Miniflare;

beforeAll(async () => {
  const modules = [
    { type: 'ESModule' as const, path: `${root}worker.mjs`, contents: WORKER },
    { type: 'CompiledWasm' as const, path: `${root}build/kernels.wasm` },
    { type: 'ESModule' as const, path: `${root}dist/errors.js` },
    ...readdirSync(`${root}dist/wasm`).filter((f) => f.endsWith('.js')).map((f) => ({ type: 'ESModule' as const, path: `${root}dist/wasm/${f}` })),
    // workerd resolves no package.json "imports" (a bundler does: wrangler, with the `workerd`
    // condition): name the module dist/wasm/kernels.js imports as '#kernel-loader' as that would
    { type: 'ESModule' as const, path: `${root}dist/wasm/#kernel-loader`, contents: readFileSync(`${root}${kernelLoader.workerd.slice(2)}`, 'utf8') },
  ];
  mf = new Miniflare({ modules, modulesRoot: root, compatibilityDate: '2025-05-05' });
  await mf.ready;
});

afterAll(async () => {
  await mf?.dispose();
});

describe('kernels in workerd, given precompiled', () => {
  it('workerd refuses to compile WebAssembly from bytes (the constraint this path exists for)', async () => {
    const r = await mf.dispatchFetch('http://worker/compile-bytes');
    expect(await r.text()).toMatch(/^refused: .*disallowed/);
  });

  it('loadKernels() without a module fails there with unsupported', async () => {
    const r = await mf.dispatchFetch('http://worker/load-without-module');
    expect(await r.text()).toBe('failed: unsupported');
  });

  it('loadKernels(module) works and BLAKE3 equals hash-wasm', async () => {
    const data = new Uint8Array(3 * 4096 + 1000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) % 251;
    const r = await mf.dispatchFetch('http://worker/', { method: 'POST', body: data });
    expect(r.status).toBe(200);
    const got = await r.json() as { hash: string; chunks: string; xxh3: string };
    const peer = await createBLAKE3();
    const ref = (d: Uint8Array): string => { peer.init(); peer.update(d); return peer.digest('hex'); };
    expect(got.hash).toBe(ref(data));
    let chunks = '';
    for (let o = 0; o < data.length; o += 4096) chunks += ref(data.subarray(o, o + 4096));
    expect(got.chunks).toBe(chunks);
    expect(got.xxh3).toBe('2d06800538d394c2');
  });
});
