/** `serve-edge DIR` as a user runs it: publish, serve, read ranges with Node's fetch and `curl -r`. */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestTls } from '../helpers/tls-certs.js';
import { cli, MiB, ok, pattern, startCli, tempDir } from './harness.js';

const run = promisify(execFile);
const t = tempDir();
afterAll(t.cleanup);

let store = '';
let image: Buffer;
let contentId = '';

beforeAll(async () => {
  const vol = join(t.dir, 'vm');
  await ok(['create', vol, '--size', '3M', '--block-size', '64K']);
  writeFileSync(join(t.dir, 'a.bin'), pattern(700_000, 3));
  await ok(['write', vol, '--offset', '100000', join(t.dir, 'a.bin')]);
  await ok(['write', vol, '--offset', String(2 * MiB + 5), join(t.dir, 'a.bin')]);
  await ok(['export', vol, join(t.dir, 'vm.raw')]);
  image = readFileSync(join(t.dir, 'vm.raw'));
  store = join(t.dir, 'published');
  contentId = (JSON.parse(await ok(['publish', vol, '--to', store, '--json'])) as { contentId: string }).contentId;
});

async function serving<T>(args: string[], fn: (url: string) => Promise<T>): Promise<T> {
  const server = startCli(['serve-edge', store, ...args]);
  try {
    return await fn(await server.firstLine());
  } finally {
    server.stop();
    expect(await server.done).toBe(0);
  }
}

describe('serve-edge (CLI)', () => {
  it('serves ranges of a published directory to fetch and to curl -r, with the headers of each kind of URL', async () => {
    await serving([], async (url) => {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const r = await fetch(`${url}vm/latest`, { headers: { Range: 'bytes=99990-200009' } });
      expect(r.status).toBe(206);
      expect(r.headers.get('content-range')).toBe(`bytes 99990-200009/${image.length}`);
      expect(r.headers.get('etag')).toBe(`"${contentId}"`);
      expect(r.headers.get('cache-control')).toBe('public, max-age=60');
      expect(r.headers.get('access-control-allow-origin')).toBeNull(); // no --allow-origin: no CORS
      expect(Buffer.from(await r.arrayBuffer()).equals(image.subarray(99990, 200010))).toBe(true);
      const whole = await fetch(`${url}vm/@${contentId}`);
      expect(whole.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(Buffer.from(await whole.arrayBuffer()).equals(image)).toBe(true);
      const { stdout } = await run('curl', ['-sS', '-f', '-r', '2097000-2098999', `${url}vm/latest`], { encoding: 'buffer' });
      expect(Buffer.from(stdout).equals(image.subarray(2097000, 2099000))).toBe(true);
      const suffix = await run('curl', ['-sS', '-f', '-r', '-100', `${url}vm/@${contentId}`], { encoding: 'buffer' });
      expect(Buffer.from(suffix.stdout).equals(image.subarray(image.length - 100))).toBe(true);
      const head = await run('curl', ['-sS', '-I', `${url}vm/latest`]);
      expect(head.stdout).toMatch(/^HTTP\/1\.1 200/);
      expect(head.stdout).toMatch(new RegExp(`content-length: ${image.length}`, 'i'));
      const nm = await fetch(`${url}vm/latest`, { headers: { 'If-None-Match': `"${contentId}"` } });
      expect(nm.status).toBe(304);
      const beyond = await fetch(`${url}vm/latest`, { headers: { Range: `bytes=${image.length}-` } });
      expect(beyond.status).toBe(416);
      expect(beyond.headers.get('content-range')).toBe(`bytes */${image.length}`);
      for (const p of ['', 'vm', `versions/${contentId}`, 'packs', 'vm/..', 'vm/%2e%2e', '..%2f..%2fetc/passwd', 'vm/latest/x', 'nothere/latest']) {
        const x = await fetch(url + p);
        expect(x.status, p).toBe(404);
        await x.arrayBuffer();
      }
      const raw = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--path-as-is', `${url}vm/../versions/${contentId}`]);
      expect(raw.stdout).toBe('404');
      const post = await fetch(`${url}vm/latest`, { method: 'POST', body: 'x' });
      expect(post.status).toBe(405);
      const evilHost = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: attacker.example', `${url}vm/latest`]);
      expect(evilHost.stdout).toBe('421');
    });
  });

  it('--allow-origin: the listed page may read (echoed, Vary: Origin), * lets any page read', async () => {
    await serving(['--allow-origin', 'https://app.example'], async (url) => {
      const r = await fetch(`${url}vm/latest`, { headers: { Origin: 'https://app.example', Range: 'bytes=0-0' } });
      expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example');
      const o = await fetch(`${url}vm/latest`, { headers: { Origin: 'https://other.example', Range: 'bytes=0-0' } });
      expect(o.headers.get('access-control-allow-origin')).toBeNull();
    });
    await serving(['--allow-origin', '*'], async (url) => {
      const r = await fetch(`${url}vm/latest`, { headers: { Origin: 'https://any.example', Range: 'bytes=0-0' } });
      expect(r.headers.get('access-control-allow-origin')).toBe('*');
    });
  });

  it('refuses plain HTTP beyond loopback, serves HTTPS with --cert/--key', async () => {
    const plain = await cli(['serve-edge', store, '--host', '0.0.0.0']);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/--cert FILE --key FILE/);
    const tls = makeTestTls(t.dir);
    await serving(['--cert', tls.serverCert, '--key', tls.serverKey, '--host', '127.0.0.1'], async (url) => {
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
      const { stdout } = await run('curl', ['-sS', '-f', '--cacert', tls.caCert, '-r', '0-99', `${url.replace('127.0.0.1', 'localhost')}vm/latest`], { encoding: 'buffer' });
      expect(Buffer.from(stdout).equals(image.subarray(0, 100))).toBe(true);
    });
  });

  it('a flipped byte in a pack: an error status or a cut body, never the wrong bytes', async () => {
    const packs = join(store, 'packs');
    const pack = readdirSync(packs).find((f) => f.endsWith('.pack'))!;
    const file = join(packs, pack);
    const good = readFileSync(file);
    const bad = Buffer.from(good);
    bad[bad.length >> 1] ^= 0x40;
    writeFileSync(file, bad);
    try {
      await serving([], async (url) => {
        const r = await fetch(`${url}vm/@${contentId}`);
        let body: Buffer | undefined;
        try {
          body = Buffer.from(await r.arrayBuffer());
        } catch {
          body = undefined; // cut mid-body: the client sees an error
        }
        if (r.status === 200 && body !== undefined) throw new Error('a damaged version was served whole');
        if (r.status !== 200) expect(r.status).toBe(502);
        const c = await run('curl', ['-sS', '-o', join(t.dir, 'got.bin'), '-w', '%{http_code}', `${url}vm/@${contentId}`]).catch((e: { stdout: string; code: number }) => e);
        expect(['502', '200']).toContain(String(c.stdout));
        if (String(c.stdout) === '200') expect((c as { code?: number }).code).toBeGreaterThan(0); // curl: transfer closed with bytes remaining
        const got = readFileSync(join(t.dir, 'got.bin'));
        if (String(c.stdout) === '200') expect(got.equals(image.subarray(0, got.length))).toBe(true);
      });
    } finally {
      writeFileSync(file, good);
    }
  });

  it('a directory with no published images: 404s; a missing directory: an error with a code', async () => {
    const missing = await cli(['serve-edge', join(t.dir, 'nope')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^stratadisk: [a-z-]+: /);
  });
});
