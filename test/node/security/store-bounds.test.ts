/**
 * Issue 13, items 7 and 8 (store server): bounded by default (connection cap, header and idle
 * timeouts), leased and enforced writer locks, `truncate` without a size refused, tokens under
 * 128 bits refused, and error answers that hand clients no server paths, process IDs or host
 * names.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { serveStore } from '../../../src/store/store-server.js';
import { Volume } from '../../../src/volume/volume.js';
import { cli } from '../cli/harness.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sd-bounds-'));
  dirs.push(d);
  return d;
}

/** A TCP connection to `port`; `closed` resolves when the server ends it. */
async function open(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  socket.on('error', () => {});
  await new Promise<void>((r, j) => {
    socket.once('connect', () => r());
    socket.once('error', j);
  });
  return { socket, closed };
}

/** POST op to the server with the token (and `extra` query), the JSON answer and status. */
async function post(url: string, token: string, query: string, body?: Uint8Array<ArrayBuffer>): Promise<{ status: number; json: { code?: string; message?: string; lease?: string; size?: number } }> {
  const res = await fetch(`${url}?${query}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: body ?? null });
  return { status: res.status, json: (await res.json()) as { code?: string; message?: string } };
}

describe('bounded by default', () => {
  it('caps connections: one beyond the cap is closed at once, the others keep working', async () => {
    const s = await serveStore(await tmp(), { maxConnections: 2 });
    const held: Socket[] = [];
    try {
      const a = await open(s.port);
      const b = await open(s.port);
      held.push(a.socket, b.socket);
      const c = await open(s.port);
      held.push(c.socket);
      await c.closed; // the server closed the third
      expect(a.socket.destroyed).toBe(false);
      a.socket.destroy();
      await a.closed;
      // room again for a client
      expect(await new RemoteNamespace(s.url, { token: s.token }).list()).toEqual([]);
    } finally {
      for (const x of held) x.destroy();
      await s.close();
    }
  });

  it('closes a connection that sends half a request and stalls (headers timeout), and an idle one', async () => {
    const s = await serveStore(await tmp(), { headersTimeoutMs: 300, idleTimeoutMs: 400 });
    try {
      const slow = await open(s.port);
      slow.socket.write('POST /?op=list HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      await slow.closed;
      const idle = await open(s.port);
      await idle.closed;
    } finally {
      await s.close();
    }
  });
});

describe('the writer lock is a lease, and it is enforced', () => {
  it('a second client cannot write, truncate or delete while another holds the lease', async () => {
    const d = await tmp();
    mkdirSync(join(d, 'vol'));
    const s = await serveStore(d);
    try {
      const a = new RemoteNamespace(`${s.url}vol`, { token: s.token });
      const sa = await a.open('manifest.0', { create: true });
      await sa.write(0, new Uint8Array([1]));
      const lock = await a.lock();
      await sa.write(1, new Uint8Array([2])); // the holder writes
      const b = new RemoteNamespace(`${s.url}vol`, { token: s.token, retries: 0 });
      const sb = await b.open('manifest.0');
      await expect(sb.write(0, new Uint8Array([66]))).rejects.toMatchObject({ code: 'locked' });
      await expect(sb.truncate(0)).rejects.toMatchObject({ code: 'locked' });
      await expect(b.delete('manifest.0')).rejects.toMatchObject({ code: 'locked' });
      await expect(b.open('other', { create: true })).rejects.toMatchObject({ code: 'locked' });
      await expect(b.lock()).rejects.toMatchObject({ code: 'locked' });
      expect([...readFileSync(join(d, 'vol', 'manifest.0'))]).toEqual([1, 2]);
      await lock.release();
      await sb.write(0, new Uint8Array([3])); // free again
      expect([...readFileSync(join(d, 'vol', 'manifest.0'))]).toEqual([3, 2]);
    } finally {
      await s.close();
    }
  });

  it('a volume open through the server: a second client cannot write its manifest, the volume itself can', async () => {
    const d = await tmp();
    const s = await serveStore(d);
    try {
      const url = `${s.url}vol`;
      const v = await Volume.create(new RemoteNamespace(url, { token: s.token }), { size: 1 << 20, blockSize: 4096 });
      const before = readFileSync(join(d, 'vol', 'manifest.0'));
      const intruder = await new RemoteNamespace(url, { token: s.token, retries: 0 }).open('manifest.0');
      await expect(intruder.write(0, new Uint8Array(64))).rejects.toMatchObject({ code: 'locked' });
      expect(readFileSync(join(d, 'vol', 'manifest.0'))).toEqual(before);
      await v.write(0, new Uint8Array(4096).fill(5));
      await v.snapshot('s1');
      await v.close();
      const again = await Volume.open(new NodeDirNamespace(join(d, 'vol')), { readOnly: true });
      expect(again.snapshots().map((x) => x.name)).toEqual(['s1']);
      expect((await again.read(0, 1))[0]).toBe(5);
      await again.close();
    } finally {
      await s.close();
    }
  });

  it('a lease that is not renewed expires: the namespace is free, the old holder is refused', async () => {
    const d = await tmp();
    mkdirSync(join(d, 'vol'));
    let now = 1_000_000;
    const s = await serveStore(d, { leaseMs: 10_000, now: () => now });
    try {
      const base = `${s.url}vol`;
      expect((await post(base, s.token, 'op=open&name=m&create=1')).status).toBe(200);
      // a client takes the lock and disappears (never renews)
      const taken = await post(base, s.token, 'op=lock');
      expect(taken.status).toBe(200);
      const gone = taken.json.lease!;
      now += 9_000;
      expect((await post(base, s.token, 'op=lock')).json.code).toBe('locked');
      now += 2_000;
      const b = new RemoteNamespace(base, { token: s.token });
      const lock = await b.lock();
      // the vanished client comes back with its old lease: refused
      const late = await post(base, s.token, `op=write&name=m&lease=${gone}`, new Uint8Array(12 + 1));
      expect(late.json.code).toBe('locked');
      await lock.release();
    } finally {
      await s.close();
    }
  });

  it('the client renews its lease while it holds the lock', async () => {
    const d = await tmp();
    mkdirSync(join(d, 'vol'));
    let now = 5_000_000;
    let renewals = 0;
    let renewed: () => void = () => {};
    const s = await serveStore(d, { leaseMs: 600, now: () => now });
    const orig = globalThis.fetch;
    globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const res = await orig(input, init);
      if (String(input).includes('op=renew')) {
        renewals++;
        renewed();
      }
      return res;
    }) as typeof fetch;
    try {
      const a = new RemoteNamespace(`${s.url}vol`, { token: s.token });
      const lock = await a.lock(); // expires at now + 600 on the server's clock
      now += 500;
      await new Promise<void>((r) => (renewed = r)); // the client renews (every 200 ms of real time)
      now += 500; // past the first expiry, within the renewed one
      await expect(new RemoteNamespace(`${s.url}vol`, { token: s.token }).lock()).rejects.toMatchObject({ code: 'locked' });
      const st = await a.open('x', { create: true });
      await st.write(0, new Uint8Array([9]));
      await lock.release();
      expect(renewals).toBeGreaterThan(0);
    } finally {
      globalThis.fetch = orig;
      await s.close();
    }
  });
});

describe('small holes', () => {
  it('truncate without a valid size is refused; the file keeps its bytes', async () => {
    const d = await tmp();
    writeFileSync(join(d, 'disk'), Buffer.alloc(4096, 1));
    const s = await serveStore(d);
    try {
      for (const q of ['op=truncate&name=disk', 'op=truncate&name=disk&size=', 'op=truncate&name=disk&size=abc', 'op=truncate&name=disk&size=-1', 'op=truncate&name=disk&size=1.5', 'op=truncate&name=disk&size=0x10']) {
        const r = await post(s.url, s.token, q);
        expect(r.status, q).toBe(400);
        expect(r.json.code).toBe('invalid-argument');
      }
      expect(readFileSync(join(d, 'disk')).length).toBe(4096);
      expect((await post(s.url, s.token, 'op=truncate&name=disk&size=100')).json.size).toBe(100);
    } finally {
      await s.close();
    }
  });

  it('refuses tokens under 128 bits (library and CLI)', async () => {
    const d = await tmp();
    for (const t of ['x', 'tok', 'secret-token', '0123456789abcdef0123456789abcde', 'has space in it and is long enough']) {
      await expect(serveStore(d, { token: t })).rejects.toMatchObject({ code: 'invalid-argument' });
    }
    const ok = await serveStore(d, { token: '0123456789abcdef0123456789abcdef' });
    await ok.close();
    const file = join(await tmp(), 'tok');
    writeFileSync(file, 'x\n', { mode: 0o600 });
    const r = await cli(['serve-store', d, '--token-file', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/too short .* 128 bits/);
  });

  it('error answers name no server path, process ID or host name', async () => {
    const d = await tmp();
    mkdirSync(join(d, 'vol'));
    const s = await serveStore(d);
    // a process on the server holds the directory's writer lock (its lock file names pid and host)
    const local = await new NodeDirNamespace(join(d, 'vol')).lock();
    try {
      const answers = [
        await post(`${s.url}vol`, s.token, 'op=lock'),
        await post(`${s.url}vol`, s.token, 'op=open&name=missing'),
        await post(`${s.url}vol`, s.token, 'op=read&name=missing', new Uint8Array(12)),
      ];
      expect(answers.map((a) => a.json.code)).toEqual(['locked', 'not-found', 'not-found']);
      for (const a of answers) {
        expect(a.json.message).not.toContain(d);
        expect(a.json.message).not.toContain(tmpdir());
        expect(a.json.message).not.toContain(hostname());
        expect(a.json.message).not.toMatch(new RegExp(`\\b${process.pid}\\b`));
      }
    } finally {
      await local.release();
      await s.close();
    }
  });
});
