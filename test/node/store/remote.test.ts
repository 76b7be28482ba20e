/**
 * RemoteNamespace (src/store/remote.ts) against a real store server (src/store/store-server.ts)
 * on loopback: the shared Store and namespace conformance suites, small requests (so batching
 * and splitting are exercised), the token, path validation, body limits, network failures, and
 * that flush reaches the disk through the server.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { serveStore, type StoreServer } from '../../../src/store/store-server.js';
import { errorCode, namespaceConformance, pattern, storeConformance } from './conformance.js';

let root: string;
let server: StoreServer;
const TOKEN = 'secret-token-of-the-remote-tests-0123456789z';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stratadisk-remote-'));
  server = await serveStore(root, { token: TOKEN, maxBodyBytes: 1 << 20 });
});
afterAll(async () => {
  await server.close();
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
const url = (seg: string) => `${server.url}${seg}#token=${TOKEN}`;

namespaceConformance('RemoteNamespace', async () => {
  const seg = `ns-${counter++}`;
  return {
    namespace: new RemoteNamespace(url(seg)),
    reopen: async () => new RemoteNamespace(url(seg)),
    readOnly: async () => new RemoteNamespace(url(seg), { readOnly: true }),
    cleanup: () => rm(join(root, seg), { recursive: true, force: true }),
  };
});

// One run of the suite (each operation is an HTTP round trip: ~20 s on the loaded VM); splitting
// and queueing with small requests are exercised by the specifics below.
storeConformance('RemoteNamespace store', async () => {
  const seg = `st-${counter++}`;
  const ns = new RemoteNamespace(url(seg));
  return {
    open: () => ns.open('disk', { create: true }),
    reopen: () => ns.open('disk'),
    openReadOnly: () => new RemoteNamespace(url(seg), { readOnly: true }).open('disk'),
    cleanup: () => rm(join(root, seg), { recursive: true, force: true }),
    largeOffsets: true,
  };
});

describe('RemoteNamespace specifics', () => {
  it('writes issued together go out as few requests, and flush makes them durable in the file', async () => {
    const ns = new RemoteNamespace(url('batch'), { maxRequestBytes: 64 * 1024, maxInFlight: 2 });
    const s = await ns.open('disk', { create: true });
    const data = pattern(1 << 20, 7);
    let requests = 0;
    const orig = globalThis.fetch;
    globalThis.fetch = ((...a: Parameters<typeof fetch>) => {
      requests++;
      return orig(...a);
    }) as typeof fetch;
    try {
      const ws: Promise<void>[] = [];
      for (let i = 0; i < 256; i++) ws.push(s.write(i * 4096, data.subarray(i * 4096, (i + 1) * 4096)));
      await Promise.all(ws);
      await s.flush();
    } finally {
      globalThis.fetch = orig;
    }
    // 1 MiB in 4 KiB writes: 16 requests of 64 KiB plus the flush, not 257
    expect(requests).toBeLessThanOrEqual(17 + 2);
    expect(Buffer.compare(readFileSync(join(root, 'batch', 'disk')), Buffer.from(data))).toBe(0);
    expect(s.size).toBe(1 << 20);
    await s.close();
  });

  it('small requests (1 KiB, 2 in flight): split and queued operations read back what was written', async () => {
    const ns = new RemoteNamespace(url('small'), { maxRequestBytes: 1024, maxInFlight: 2 });
    const s = await ns.open('disk', { create: true });
    const model = new Uint8Array(64 * 1024);
    await s.truncate(model.length);
    // 40 disjoint writes of up to 1,600 bytes, all issued at once: split into 1 KiB requests, queued behind 2 in flight
    const ws: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const d = pattern(1 + ((i * 7919) % 1600), i + 1);
      model.set(d, i * 1600);
      ws.push(s.write(i * 1600, d));
    }
    await Promise.all(ws);
    const reads = await Promise.all([0, 1, 2, 3].map((k) => s.read(k * 16384, 16384)));
    reads.forEach((r, k) => expect(Buffer.compare(Buffer.from(r), Buffer.from(model.subarray(k * 16384, (k + 1) * 16384)))).toBe(0));
    await s.close();
  });

  it('refuses a wrong or missing token', async () => {
    expect(await errorCode(new RemoteNamespace(server.url).list())).toBe('invalid-argument');
    expect(await errorCode(new RemoteNamespace(server.url, { token: `${TOKEN.slice(0, -1)}A` }).list())).toBe('invalid-argument');
    expect(await new RemoteNamespace(server.url, { token: TOKEN }).list()).toEqual(expect.any(Array));
  });

  it('never leaves its directory: paths and names are plain names', async () => {
    const outside = join(root, '..', `escape-${process.pid}`);
    // node:http sends the path as given (fetch would normalise the dots away)
    const raw = (path: string, query: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: server.port, method: 'POST', path: `${path}?${query}`, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    for (const path of ['/..', '/%2e%2e', '/a/b', '/%2e%2e%2fx', '/.hidden']) expect(await raw(path, 'op=list')).toBe(400);
    for (const name of ['..', '../x', '%2e%2e%2fescape', '', 'a/b', '.lock']) expect(await raw('/', `op=open&create=1&name=${name}`)).toBe(400);
    expect(existsSync(outside)).toBe(false);
    expect(await raw('/', 'op=nonsense')).toBe(400);
    expect(() => new RemoteNamespace('http://127.0.0.1:1/a/b')).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    expect(() => new RemoteNamespace('file:///etc')).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
  });

  it('refuses plain http beyond loopback unless told (the token would cross the network in clear)', () => {
    for (const url of ['http://10.1.2.3:7000/vol', 'http://example.com/vol', 'http://[fe80::1]:7000/', 'http://127.0.0.1.example.com/'])
      expect(() => new RemoteNamespace(`${url}#token=${'a'.repeat(32)}`)).toThrow(expect.objectContaining({ code: 'invalid-argument', message: expect.stringMatching(/plain HTTP to another host[^]*--insecure/) }));
    expect(() => new RemoteNamespace('http://10.1.2.3:7000/vol', { insecure: true })).not.toThrow();
    expect(() => new RemoteNamespace(`http://10.1.2.3:7000/vol#token=${'a'.repeat(32)}&insecure=1`)).not.toThrow();
    for (const url of ['https://10.1.2.3:7000/vol', 'http://127.0.0.1:7000/vol', 'http://[::1]:7000/', 'http://localhost:7000/'])
      expect(() => new RemoteNamespace(url)).not.toThrow();
  });

  it('bounds request bodies and read answers', async () => {
    const post = (q: string, body: Uint8Array<ArrayBuffer>) => fetch(`${server.url}?${q}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body });
    await (await new RemoteNamespace(url('')).open('big', { create: true })).close();
    expect((await post('op=write&name=big', new Uint8Array(2 << 20))).status).toBe(413);
    // a read of 16 MiB in one request (the limit is 1 MiB here) is refused before allocating
    const head = new Uint8Array(12);
    new DataView(head.buffer).setUint32(8, 16 << 20, true);
    expect((await post('op=read&name=big', head)).status).toBe(416);
    // the client splits big operations below the limit, so they work
    const ns = new RemoteNamespace(url(''), { maxRequestBytes: 512 * 1024 });
    const s = await ns.open('big');
    const data = pattern(3 << 20, 3);
    await s.write(0, data);
    expect(Buffer.compare(Buffer.from(await s.read(0, data.length)), Buffer.from(data))).toBe(0);
    await s.close();
  });

  it('a server that is gone gives io with a hint, after retries', async () => {
    const other = await serveStore(root);
    const ns = new RemoteNamespace(`${other.url}#token=${other.token}`, { retries: 1 });
    const s = await ns.open('gone', { create: true });
    await other.close();
    const e = await s.write(0, new Uint8Array(10)).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'io', message: expect.stringContaining('serve-store') });
    expect(await errorCode(ns.list())).toBe('io');
  });

  it('the writer lock is held for the client until released', async () => {
    await mkdir(join(root, 'locked'), { recursive: true });
    const a = new RemoteNamespace(url('locked'));
    const l = await a.lock();
    expect(await errorCode(new RemoteNamespace(url('locked')).lock())).toBe('locked');
    await l.release();
    await (await a.lock()).release();
    expect((await readdir(join(root, 'locked'))).includes('.stratadisk.lock')).toBe(false);
  });
});
