/**
 * The store server's object area (src/transfer/store-server-objects.ts) and its client
 * (src/transfer/http-objects.ts): the shared ObjectStore conformance suite against a real
 * server on loopback, and what each side refuses from a hostile other side.
 */
import { lstat, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { serveStore, type StoreServer } from '../../../src/store/store-server.js';
import { HttpObjectStore } from '../../../src/transfer/http-objects.js';
import { storeObjectArea } from '../../../src/transfer/store-server-objects.js';
import { objectStoreConformance } from './object-store-conformance.js';

async function startArea(options: { maxBodyBytes?: number } = {}): Promise<{ server: StoreServer; dir: string; store: HttpObjectStore; errors: unknown[]; stop(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'sd-http-objects-'));
  const errors: unknown[] = [];
  const server = await serveStore(dir, { routes: [storeObjectArea()], onError: (e) => errors.push(e), ...options });
  const store = new HttpObjectStore(server.url, { token: server.token, retryDelayMs: 10 });
  return {
    server,
    dir,
    store,
    errors,
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

objectStoreConformance('store server object area (http)', async () => {
  const a = await startArea();
  return { store: a.store, cleanup: () => a.stop() };
});

async function codeOf(p: () => Promise<unknown>): Promise<string> {
  try {
    await p();
    return 'resolved';
  } catch (e) {
    return isStrataError(e) ? e.code : `other: ${String(e)}`;
  }
}

describe('store server object area: what the server refuses', () => {
  let a: Awaited<ReturnType<typeof startArea>>;
  const raw = (path: string, init: RequestInit = {}) =>
    fetch(`${a.server.url.replace(/\/$/, '')}${path}`, { ...init, headers: { authorization: `Bearer ${a.server.token}`, ...(init.headers as Record<string, string>) } });
  /** A request with the path exactly as given, bytes and all (fetch would resolve dot segments; node:http refuses control characters). */
  const sendRaw = async (method: string, path: string, body?: string): Promise<{ status: number; body: string }> => {
    const { connect } = await import('node:net');
    return new Promise((resolve, reject) => {
      const sock = connect(a.server.port, '127.0.0.1');
      let text = '';
      sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
      sock.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? resolve({ status: 0, body: '' }) : reject(e)));
      sock.on('close', () => {
        const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
        resolve({ status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
      });
      const b = body ?? '';
      sock.write(`${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${a.server.token}\r\nConnection: close\r\nContent-Length: ${b.length}\r\n\r\n${b}`, 'latin1');
    });
  };
  beforeAll(async () => {
    a = await startArea({ maxBodyBytes: 1 << 20 });
    await a.store.put('images/x/tags/latest', new TextEncoder().encode('{}'));
  });
  afterAll(() => a.stop());

  it('keeps objects in DIR/.objects (0700/0600), where no namespace reaches them', async () => {
    const st = await lstat(join(a.dir, '.objects'));
    expect(st.mode & 0o777).toBe(0o700);
    expect((await lstat(join(a.dir, '.objects/images/x/tags/latest'))).mode & 0o777).toBe(0o600);
    // the root namespace does not list it, and a namespace named .objects cannot be asked for
    const list = await raw('/?op=list', { method: 'POST' });
    expect(((await list.json()) as { names: string[] }).names).toEqual([]);
  });

  it('refuses bad keys as sent (dot segments, percent-encoding, absolute, too long, control characters) before touching the disk', async () => {
    const bad = ['/.objects/..', '/.objects/../x', '/.objects/a/../../etc/passwd', '/.objects/%2e%2e/x', '/.objects/a%2fb', '/.objects//etc/passwd', '/.objects/a//b', `/.objects/${'k'.repeat(1025)}`, '/.objects/a%00b', '/.objects/a%0ab', '/.objects/./a', '/.objects/a/.'];
    for (const path of [...bad, '/.objects/a\tb', '/.objects/a\u0001b']) {
      for (const method of ['GET', 'HEAD', 'PUT']) {
        const r = await sendRaw(method, path, method === 'PUT' ? 'x' : undefined);
        // the HTTP parser itself drops a request line with a control character (status 0: the connection was closed)
        expect(r.status, `${method} ${JSON.stringify(path)}`).toBe(/[\t\u0001]/.test(path) ? 0 : 400);
        if (method !== 'HEAD' && !/[\t\u0001]/.test(path)) expect(JSON.parse(r.body).code, path).toBe('invalid-argument');
      }
    }
    const dirs = await readdir(join(a.dir, '.objects'));
    expect(dirs).toEqual(['images']);
    const del = await raw('/.objects/?delete', { method: 'POST', body: JSON.stringify({ keys: ['images/x/tags/latest', '../x'] }) });
    expect(del.status).toBe(400);
    expect(await a.store.head('images/x/tags/latest')).not.toBeNull(); // all keys are checked before any is deleted
  });

  it('a seeded fuzz of hostile paths: never a 5xx, never a file outside DIR/.objects, never a server path in an answer', async () => {
    const parts = ['..', '.', '%2e%2e', '%2E.', '.%2e', '%2f', '%5c', 'a', 'b.c', '', '\\', '%00', '~', '@', 'x'.repeat(300), 'y'.repeat(1030), 'images', 'packs', '..%2f..', '%252e%252e', ';', '*'];
    let x = 0x5eed;
    const rnd = (n: number) => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) % n;
    };
    const outside = async () => (await readdir(a.dir)).sort();
    const before = await outside();
    for (let i = 0; i < 300; i++) {
      const segs = Array.from({ length: 1 + rnd(4) }, () => parts[rnd(parts.length)]!);
      const path = `/.objects/${segs.join('/')}${rnd(5) === 0 ? '/' : ''}`;
      const method = ['GET', 'HEAD', 'PUT'][rnd(3)]!;
      const r = await sendRaw(method, path, method === 'PUT' ? 'fuzz' : undefined);
      expect(r.status, `${method} ${path.slice(0, 120)}`).toBeGreaterThanOrEqual(200);
      expect(r.status, `${method} ${path.slice(0, 120)}`).toBeLessThan(500);
      expect(r.body).not.toContain(a.dir);
    }
    expect(await outside()).toEqual(before);
    expect(a.errors).toEqual([]);
  });

  it('refuses a body over its limit before reading it, and bad listing and delete requests', async () => {
    const big = await raw('/.objects/big', { method: 'PUT', body: new Uint8Array((1 << 20) + 1) });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { code: string }).code).toBe('out-of-range');
    expect(await a.store.head('big')).toBeNull();
    expect(await codeOf(() => a.store.put('big', new Uint8Array((1 << 20) + 1)))).toBe('out-of-range');
    expect((await raw('/.objects/?list&limit=1001')).status).toBe(400);
    expect((await raw('/.objects/?list&prefix=..%2F%00')).status).toBe(400);
    expect((await raw('/.objects/?delete', { method: 'POST', body: JSON.stringify({ keys: Array.from({ length: 1001 }, (_, i) => `k${i}`) }) })).status).toBe(400);
    expect((await raw('/.objects/?delete', { method: 'POST', body: 'not json' })).status).toBe(400);
    expect((await raw('/.objects/x', { method: 'DELETE' })).status).toBe(405);
    expect((await raw('/.objects/images/x/tags/latest', { headers: { range: 'bytes=0-1,4-5' } })).status).toBe(400);
    expect((await raw('/.objects/images/x/tags/latest', { headers: { range: `bytes=0-${2 << 20}` } })).status).toBe(206); // clamped to the size
    expect(a.errors).toEqual([]);
  });

  it('refuses requests without the token, and from origins not allowed; answers name no server path', async () => {
    const r = await fetch(`${a.server.url}.objects/images/x/tags/latest`);
    expect(r.status).toBe(401);
    const wrong = new HttpObjectStore(a.server.url, { token: 'A'.repeat(43) });
    const e = await wrong.get('images/x/tags/latest').catch((x: unknown) => x as Error);
    expect(isStrataError(e) && e.code).toBe('permission-denied');
    expect((e as Error).message).not.toContain('A'.repeat(43));
    const o = await raw('/.objects/images/x/tags/latest', { headers: { origin: 'https://evil.example' } });
    expect(o.status).toBe(403);
    const blocked = await raw('/.objects/own/b', { method: 'PUT', body: 'x' });
    expect(blocked.status).toBe(201);
    // a file where a directory of the key must be: refused without the path
    const under = await raw('/.objects/own/b/c', { method: 'PUT', body: 'x' });
    expect(under.status).toBeGreaterThanOrEqual(400);
    expect(await under.text()).not.toContain(a.dir);
  });

  it('does not follow a symbolic link at DIR/.objects', async () => {
    const b = await startArea();
    try {
      const elsewhere = await mkdtemp(join(tmpdir(), 'sd-elsewhere-'));
      await writeFile(join(elsewhere, 'secret'), 'x');
      const { symlink } = await import('node:fs/promises');
      await symlink(elsewhere, join(b.dir, '.objects'));
      expect(await codeOf(() => b.store.get('secret'))).toBe('unsafe-path');
      expect(await codeOf(() => b.store.put('new', new Uint8Array(1)))).toBe('unsafe-path');
      expect(await readdir(elsewhere)).toEqual(['secret']);
      await rm(elsewhere, { recursive: true, force: true });
    } finally {
      await b.stop();
    }
  });
});

describe('HttpObjectStore: what the client refuses from a hostile server', () => {
  let hostile: Server;
  let url: string;
  let mode = '';
  beforeAll(async () => {
    hostile = createServer((req, res) => {
      req.resume();
      switch (mode) {
        case 'huge-length':
          res.writeHead(200, { 'content-length': String(2 ** 40) });
          res.write(new Uint8Array(1024));
          return; // never ends
        case 'endless': {
          res.writeHead(200, {});
          const chunk = new Uint8Array(64 << 10);
          const pump = () => {
            while (res.write(chunk)) {
              if (res.destroyed) return;
            }
            res.once('drain', pump);
          };
          res.on('error', () => {});
          pump();
          return;
        }
        case 'long-range':
          res.writeHead(206, { 'content-range': 'bytes 0-99/1000' });
          res.end(new Uint8Array(100));
          return;
        case 'redirect':
          res.writeHead(302, { location: 'http://127.0.0.1:1/steal' });
          res.end();
          return;
        case 'looping-list':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ objects: [{ key: 'a', size: 1 }], next: 'a' }));
          return;
        case 'echo-token':
          res.writeHead(400, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ code: 'invalid-argument', message: `you sent ${req.headers.authorization}` }));
          return;
        default:
          res.writeHead(500);
          res.end();
      }
    });
    await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
    const addr = hostile.address() as { port: number };
    url = `http://127.0.0.1:${addr.port}/`;
  });
  afterAll(async () => {
    hostile.closeAllConnections();
    await new Promise((r) => hostile.close(r));
  });
  const token = 'tok-0123456789abcdefghijklmnopqrstuvwxyz';
  const client = () => new HttpObjectStore(url, { token, maxObjectBytes: 1 << 20, retries: 0 });

  it('refuses a Content-Length over its bound without reading, and a body that grows past it', async () => {
    mode = 'huge-length';
    expect(await codeOf(() => client().get('k'))).toBe('out-of-range');
    expect(await codeOf(() => client().get('k', { offset: 0, length: 10 }))).toBe('corrupt');
    mode = 'endless';
    expect(await codeOf(() => client().get('k'))).toBe('out-of-range');
    mode = 'long-range';
    expect(await codeOf(() => client().get('k', { offset: 0, length: 10 }))).toBe('corrupt');
  });

  it('does not follow redirects, refuses a listing that does not advance, and never prints the token', async () => {
    mode = 'redirect';
    expect(await codeOf(() => client().get('k'))).toBe('untrusted');
    mode = 'looping-list';
    const seen: string[] = [];
    const e = await (async () => {
      for await (const o of client().list('')) seen.push(o.key);
    })().catch((x: unknown) => x);
    expect(isStrataError(e) && e.code).toBe('corrupt');
    expect(seen).toEqual(['a']);
    mode = 'echo-token';
    const m = await client().get('k').catch((x: unknown) => x as Error);
    expect(isStrataError(m) && m.code).toBe('invalid-argument');
    const { redactSecrets } = await import('../../../src/util/redact.js');
    expect(redactSecrets((m as Error).message)).not.toContain(token);
  });

  it('refuses URLs with credentials, a path or a fragment', () => {
    for (const u of ['http://u:p@127.0.0.1:1/', 'http://127.0.0.1:1/vol', 'http://127.0.0.1:1/#token=abc', 'ftp://x/']) {
      expect(() => new HttpObjectStore(u), u).toThrow();
    }
  });
});
