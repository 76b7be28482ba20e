/**
 * Issue 13, item 6: network exposure of the store server is deliberate. Plain HTTP only on
 * loopback (else TLS, or --insecure); HTTPS with --cert/--key, trusted by clients through their
 * CA (NODE_EXTRA_CA_CERTS); the Host header must name the server (DNS rebinding); CORS only for
 * configured origins. HTTP clients (store client, copy-on-read image) follow redirects only
 * within the origin, never https -> http, and name the refusal (`untrusted`), as they do for a
 * certificate they do not trust.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpStore } from '../../../src/store/http.js';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { serveStore, type StoreServer } from '../../../src/store/store-server.js';
import { cli } from '../cli/harness.js';
import { makeTestTls, type TestTls } from '../helpers/tls-certs.js';

const dirs: string[] = [];
let tls: TestTls;
beforeAll(() => {
  tls = makeTestTls();
  dirs.push(tls.dir);
});
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sd-net-'));
  dirs.push(d);
  return d;
}

/** One raw HTTP request (node:http sends the headers exactly as given). */
function raw(port: number, opts: { method?: string; path?: string; headers?: Record<string, string> }): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: opts.method ?? 'POST', path: opts.path ?? '/?op=list', headers: opts.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('where the store server listens', () => {
  it('refuses a non-loopback address in plain HTTP unless insecure (library and CLI)', async () => {
    const d = await tmp();
    await expect(serveStore(d, { host: '0.0.0.0' })).rejects.toMatchObject({ code: 'invalid-argument' });
    const r = await cli(['serve-store', d, '--host', '0.0.0.0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--cert FILE --key FILE, or --insecure/);
    const s = await serveStore(d, { host: '0.0.0.0', insecure: true });
    await s.close();
  });

  it('--insecure on a non-loopback address is announced', async () => {
    const d = await tmp();
    const { startCli } = await import('../cli/harness.js');
    const s = startCli(['serve-store', d, '--host', '0.0.0.0', '--insecure']);
    try {
      await s.firstLine();
      expect(s.out().stderr).toMatch(/WARNING: plain HTTP on 0\.0\.0\.0/);
    } finally {
      s.stop();
      await s.done;
    }
  });
});

describe('HTTPS', () => {
  let server: StoreServer;
  let dir: string;
  beforeAll(async () => {
    dir = await tmp();
    server = await serveStore(dir, { tls: { cert: readFileSync(tls.serverCert), key: readFileSync(tls.serverKey) } });
  });
  afterAll(() => server.close());

  it('serves https; a client that does not trust the CA gets `untrusted` at once (no retries)', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const e = await new RemoteNamespace(server.url, { token: server.token, retries: 3 }).list().catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'untrusted', message: expect.stringContaining('NODE_EXTRA_CA_CERTS') });
    let requests = 0;
    const e2 = await HttpStore.open(`https://localhost:${server.port}/img`, { onRequest: () => requests++, backoffMs: 1 }).catch((x: unknown) => x);
    expect(e2).toMatchObject({ code: 'untrusted' });
  });

  const cliJs = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
  it.skipIf(!existsSync(cliJs))('a client trusting the CA (NODE_EXTRA_CA_CERTS) mirrors over https, by IP and by the certificate\'s name', async () => {
    const d = await tmp();
    const src = join(d, 'v');
    const run = (args: string[], env: Record<string, string> = {}) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [cliJs, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
    expect((await run(['create', src, '--size', '1M', '--block-size', '4K'])).code).toBe(0);
    const env = { NODE_EXTRA_CA_CERTS: tls.caCert, STRATADISK_TOKEN: server.token };
    const byIp = await run(['mirror', src, `${server.url}copy`], env);
    expect(byIp.stderr).toBe('');
    expect(byIp.code).toBe(0);
    const byName = await run(['mirror', src, `https://localhost:${server.port}/copy2`], env);
    expect(byName.code).toBe(0);
    expect(existsSync(join(dir, 'copy2'))).toBe(true);
    const untrusted = await run(['mirror', src, `${server.url}copy3`], { STRATADISK_TOKEN: server.token });
    expect(untrusted.code).toBe(2);
    expect(untrusted.stderr).toMatch(/^stratadisk: untrusted: /);
  });
});

describe('who may talk to the store server', () => {
  let server: StoreServer;
  beforeAll(async () => {
    server = await serveStore(await tmp(), { allowOrigins: ['https://app.example'] });
  });
  afterAll(() => server.close());
  const auth = () => ({ authorization: `Bearer ${server.token}` });

  it('answers only under its own names: a DNS-rebinding Host is refused', async () => {
    expect((await raw(server.port, { headers: { ...auth(), host: 'attacker.example' } })).status).toBe(421);
    expect((await raw(server.port, { headers: { ...auth(), host: `rebind.attacker.example:${server.port}` } })).status).toBe(421);
    expect((await raw(server.port, { headers: { ...auth(), host: `127.0.0.1:${server.port}` } })).status).toBe(200);
    expect((await raw(server.port, { headers: { ...auth(), host: `localhost:${server.port}` } })).status).toBe(200);
  });

  it('gives CORS answers only to configured origins (none by default), never `*`', async () => {
    const evil = await raw(server.port, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-private-network': 'true' } });
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    expect(evil.headers['access-control-allow-private-network']).toBeUndefined();
    const evilPost = await raw(server.port, { headers: { ...auth(), origin: 'https://evil.example' } });
    expect(evilPost.status).toBe(403);
    expect(evilPost.headers['access-control-allow-origin']).toBeUndefined();
    const good = await raw(server.port, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    expect(good.headers['access-control-allow-origin']).toBe('https://app.example');
    const goodPost = await raw(server.port, { headers: { ...auth(), origin: 'https://app.example' } });
    expect(goodPost.status).toBe(200);
    expect(goodPost.headers['access-control-allow-origin']).toBe('https://app.example');

    const plain = await serveStore(await tmp());
    try {
      const r = await raw(plain.port, { method: 'OPTIONS', headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST' } });
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
    } finally {
      await plain.close();
    }
  });
});

describe('HTTP clients and redirects', () => {
  /** A server that answers every request with `status` and Location `to()`, counting requests. */
  async function redirector(status: number, to: (port: number) => string): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
    let hits = 0;
    const s: Server = createServer((req, res) => {
      hits++;
      req.resume();
      res.writeHead(status, { location: to((s.address() as AddressInfo).port) }).end();
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/`, hits: () => hits, close: () => new Promise<void>((r) => s.close(() => r())) };
  }

  it('the store client refuses a redirect to another origin, and sends nothing there', async () => {
    const target = await redirector(500, () => '/');
    const front = await redirector(307, () => `${target.url}vol`);
    try {
      const e = await new RemoteNamespace(`${front.url}vol`, { token: 'A'.repeat(43), retries: 3 }).list().catch((x: unknown) => x);
      expect(e).toMatchObject({ code: 'untrusted', message: expect.stringContaining('another origin') });
      expect(target.hits()).toBe(0);
      expect(front.hits()).toBe(1);
    } finally {
      await front.close();
      await target.close();
    }
  });

  it('the store client follows a redirect within its origin (307 keeps the method and body)', async () => {
    const d = await tmp();
    mkdirSync(join(d, 'b'));
    const real = await serveStore(d);
    const orig = globalThis.fetch;
    let redirected = 0;
    globalThis.fetch = ((input: string | URL | Request, init?: RequestInit) => {
      const url = String(input);
      if (url.startsWith(`${real.url}old?`)) {
        redirected++;
        return Promise.resolve(new Response(null, { status: 307, headers: { location: `/b?${url.split('?')[1]}` } }));
      }
      return orig(input, init);
    }) as typeof fetch;
    try {
      const ns = new RemoteNamespace(`${real.url}old`, { token: real.token });
      const s = await ns.open('disk', { create: true });
      await s.write(0, new Uint8Array([1, 2, 3]));
      expect([...(await s.read(0, 3))]).toEqual([1, 2, 3]);
      expect(await ns.list()).toEqual(['disk']);
      expect(redirected).toBeGreaterThan(2);
      expect(readFileSync(join(d, 'b', 'disk'))).toEqual(Buffer.from([1, 2, 3]));
    } finally {
      globalThis.fetch = orig;
      await real.close();
    }
  });

  it('the image client refuses https -> http and cross-origin redirects, follows same-origin ones', async () => {
    const calls: string[] = [];
    const image = new Uint8Array(100).fill(7);
    const fake: typeof fetch = async (input) => {
      const url = String(input);
      calls.push(url);
      if (url === 'https://img.example/down') return new Response(null, { status: 302, headers: { location: 'http://img.example/disk' } });
      if (url === 'https://img.example/away') return new Response(null, { status: 301, headers: { location: 'https://cdn.other.example/disk' } });
      if (url === 'https://img.example/moved') return new Response(null, { status: 302, headers: { location: '/disk' } });
      if (url === 'https://img.example/disk') return new Response(image.slice(0, 1), { status: 206, headers: { 'content-range': `bytes 0-0/${image.length}`, etag: '"v1"' } });
      return new Response(null, { status: 404 });
    };
    await expect(HttpStore.open('https://img.example/down', { fetch: fake })).rejects.toMatchObject({ code: 'untrusted', message: expect.stringContaining('downgrade') });
    await expect(HttpStore.open('https://img.example/away', { fetch: fake })).rejects.toMatchObject({ code: 'untrusted', message: expect.stringContaining('another origin') });
    expect(calls).not.toContain('http://img.example/disk');
    expect(calls).not.toContain('https://cdn.other.example/disk');
    const ok = await HttpStore.open('https://img.example/moved', { fetch: fake });
    expect(ok.size).toBe(100);
    await ok.close();
  });

  it('create --backing URL names a refused redirect instead of retrying', async () => {
    const target = await redirector(404, () => '/');
    const front = await redirector(302, () => `${target.url}disk.raw`);
    try {
      const d = await tmp();
      const r = await cli(['create', join(d, 'v'), '--backing', `${front.url}disk.raw`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^stratadisk: untrusted: .*another origin/);
      expect(target.hits()).toBe(0);
      expect(front.hits()).toBe(1);
    } finally {
      await front.close();
      await target.close();
    }
  });
});
