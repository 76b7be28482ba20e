/**
 * Publish to a store server (`stratadisk serve-store DIR`) and serve from it, as a user runs it
 * from a shell: every stratadisk is its own process; the token reaches the clients only through
 * $STRATADISK_TOKEN or --token-file. An interrupted publish (the process killed mid-way) is
 * completed by running it again, without re-sending what landed.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpObjectStore } from '../../../src/transfer/http-objects.js';
import { openPublishedVersion } from '../../../src/transfer/published-version.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { MiB, pattern, tempDir } from './harness.js';

const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');
const run = promisify(execFile);

/** A long-running stratadisk process and the first line it printed. */
async function startProcess(args: string[], env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; first: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let stdout = '';
  const first = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!.trim());
    });
    child.once('exit', () => reject(new Error(`stratadisk ${args[0]} exited before it printed a line: ${stderr}`)));
  });
  return { child, first, stderr: () => stderr };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

describe('publish to a store server (serve-store) and serve-edge from it: CLI processes', () => {
  const t = tempDir();
  const served = join(t.dir, 'served');
  const tokenFile = join(t.dir, 'token');
  const vol = join(t.dir, 'vm');
  let server: ChildProcess;
  let url: string;
  let token: string;
  let env: NodeJS.ProcessEnv;
  let model: Uint8Array;

  beforeAll(async () => {
    mkdirSync(served, { mode: 0o700 });
    const s = await startProcess(['serve-store', served, '--token-file', tokenFile], { ...process.env, STRATADISK_TOKEN: '' });
    server = s.child;
    url = s.first;
    token = readFileSync(tokenFile, 'utf8').trim();
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    env = { ...process.env, STRATADISK_TOKEN: token };
    await run(process.execPath, [CLI, 'create', vol, '--size', '8M']);
    model = new Uint8Array(8 * MiB);
    model.set(pattern(3 * MiB, 7), 1 * MiB);
    model.set(pattern(64 * 1024, 9), 6 * MiB + 4096);
    const f = join(t.dir, 'in.raw');
    writeFileSync(f, model);
    await run(process.execPath, [CLI, 'import', vol, f]);
  }, 120_000);

  afterAll(async () => {
    if (server) await stop(server);
    t.cleanup();
  });

  it('publishes (token from the environment), lists (token file), dedups a second publish, serves the same bytes', { timeout: 180_000 }, async () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const first = JSON.parse((await run(process.execPath, [CLI, 'publish', vol, '--to', url, '--json'], { env })).stdout) as { contentId: string; chunks: number; chunksUploaded: number };
    expect(first.contentId).toMatch(/^[0-9a-f]{64}$/);
    expect(first.chunksUploaded).toBe(first.chunks);
    // the objects are on the server, in DIR/.objects, private
    expect(readdirSync(join(served, '.objects'))).toEqual(expect.arrayContaining(['images', 'packs', 'segments', 'versions']));
    expect(statSync(join(served, '.objects')).mode & 0o777).toBe(0o700);
    const pack = readdirSync(join(served, '.objects', 'packs'))[0]!;
    expect(statSync(join(served, '.objects', 'packs', pack)).mode & 0o777).toBe(0o600);

    const listed = JSON.parse((await run(process.execPath, [CLI, 'versions', url, '--json', '--token-file', tokenFile], { env: { ...process.env, STRATADISK_TOKEN: '' } })).stdout) as { versions: { contentId: string; tags: string[] }[] };
    expect(listed.versions.map((v) => v.contentId)).toEqual([first.contentId]);
    expect(listed.versions[0]!.tags).toEqual(['latest']);

    // change one 64 KiB block: only it travels again (plus the index, a segment, the manifest)
    const f = join(t.dir, 'block.bin');
    const block = pattern(64 * 1024, 11);
    const before = model.slice();
    writeFileSync(f, block);
    await run(process.execPath, [CLI, 'write', vol, '--offset', String(2 * MiB), f]);
    model.set(block, 2 * MiB);
    const second = JSON.parse((await run(process.execPath, [CLI, 'publish', vol, '--to', url, '--json'], { env })).stdout) as { contentId: string; chunksUploaded: number; packBytesUploaded: number; bytesUploaded: number };
    expect(second.contentId).not.toBe(first.contentId);
    expect(second.chunksUploaded).toBe(1);
    expect(second.packBytesUploaded).toBe(64 * 1024);
    expect(second.bytesUploaded).toBeLessThan(1.1 * 64 * 1024 + 32 * 1024);

    const edge = await startProcess(['serve-edge', url], env);
    try {
      const base = edge.first.replace(/\/$/, '');
      const whole = await fetch(`${base}/vm/latest`);
      expect(whole.status).toBe(200);
      expect(whole.headers.get('etag')).toBe(`"${second.contentId}"`);
      expect(Buffer.compare(Buffer.from(await whole.arrayBuffer()), Buffer.from(model))).toBe(0);
      const part = await fetch(`${base}/vm/@${first.contentId}`, { headers: { range: 'bytes=2097000-2097300' } });
      expect(part.status).toBe(206);
      expect(new Uint8Array(await part.arrayBuffer())).toEqual(before.subarray(2097000, 2097301));
    } finally {
      await stop(edge.child);
    }

    const gc = JSON.parse((await run(process.execPath, [CLI, 'gc', url, '--keep', '1', '--json'], { env })).stdout) as { deletedVersions: number; keptVersions: number };
    expect(gc).toMatchObject({ deletedVersions: 1, keptVersions: 1 });
  });

  it('a wrong or missing token is refused with permission-denied, and no token is ever printed', { timeout: 120_000 }, async () => {
    const wrong = 'wrong-token-0123456789abcdefghij';
    for (const cmd of [['versions', url], ['publish', vol, '--to', url], ['gc', url, '--keep', '1']]) {
      const e = await run(process.execPath, [CLI, ...cmd], { env: { ...process.env, STRATADISK_TOKEN: wrong } }).then(
        () => null,
        (x: { code: number; stdout: string; stderr: string }) => x,
      );
      expect(e?.code, cmd.join(' ')).toBe(2);
      expect(e?.stderr).toMatch(/permission-denied/);
      expect(e!.stderr + e!.stdout).not.toContain(wrong);
      expect(e!.stderr + e!.stdout).not.toContain(token);
    }
    const none = await run(process.execPath, [CLI, 'versions', url], { env: { ...process.env, STRATADISK_TOKEN: '' } }).then(
      () => null,
      (x: { code: number; stderr: string }) => x,
    );
    expect(none?.code).toBe(2);
    expect(none?.stderr).toMatch(/token-file|STRATADISK_TOKEN/);
    const edge = await run(process.execPath, [CLI, 'serve-edge', url], { env: { ...process.env, STRATADISK_TOKEN: wrong } }).then(
      () => null,
      (x: { code: number; stderr: string }) => x,
    );
    expect(edge?.code).toBe(2);
    expect(edge?.stderr).toMatch(/permission-denied/);
    expect(edge?.stderr).not.toContain(wrong);
  });

  it('a publish killed mid-way leaves no version; run again, it completes without re-sending what landed, and reads back whole', { timeout: 240_000 }, async () => {
    // 40 MiB of data: three packs. A gate in front of the server passes the first pack's PUT,
    // then holds every later request, so the publish is surely mid-way when it is killed.
    const big = join(t.dir, 'big');
    await run(process.execPath, [CLI, 'create', big, '--size', '40M']);
    const data = pattern(40 * MiB, 21);
    writeFileSync(join(t.dir, 'big.raw'), data);
    await run(process.execPath, [CLI, 'import', big, join(t.dir, 'big.raw')]);

    let packsPassed = 0;
    const held: (() => void)[] = [];
    const gate: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const forward = async () => {
          const r = await fetch(`${url.replace(/\/$/, '')}${req.url}`, {
            method: req.method!,
            headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => ['authorization', 'content-type', 'range', 'if-none-match'].includes(k)) as [string, string][]),
            ...(req.method === 'GET' || req.method === 'HEAD' ? {} : { body: Buffer.concat(chunks) }),
          });
          const body = Buffer.from(await r.arrayBuffer());
          if (req.method === 'PUT' && /\.pack$/.test(req.url ?? '') && r.status === 201) packsPassed++;
          res.writeHead(r.status, Object.fromEntries([...r.headers].filter(([k]) => k !== 'transfer-encoding' && k !== 'connection')));
          res.end(body);
        };
        if (packsPassed >= 1) held.push(() => res.destroy());
        else void forward().catch(() => res.destroy());
      });
    });
    await new Promise<void>((r) => gate.listen(0, '127.0.0.1', r));
    const gateUrl = `http://127.0.0.1:${(gate.address() as { port: number }).port}/`;
    try {
      const pub = spawn(process.execPath, [CLI, 'publish', big, '--to', gateUrl, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      pub.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      pub.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = once(pub, 'exit');
      while (held.length === 0 && pub.exitCode === null) await new Promise((r) => setTimeout(r, 20));
      expect(pub.exitCode, out).toBeNull(); // still running, stuck behind the gate
      pub.kill('SIGKILL');
      await exited;
    } finally {
      for (const h of held) h();
      gate.closeAllConnections();
      await new Promise((r) => gate.close(r));
    }
    expect(packsPassed).toBeGreaterThanOrEqual(1);
    const objects = new HttpObjectStore(url, { token });
    const versionsBefore: string[] = [];
    for await (const o of objects.list('images/big/')) versionsBefore.push(o.key);
    expect(versionsBefore).toEqual([]); // no half-published version is visible

    const again = JSON.parse((await run(process.execPath, [CLI, 'publish', big, '--to', url, '--json'], { env })).stdout) as { contentId: string; chunks: number; chunksUploaded: number };
    expect(again.chunksUploaded).toBeLessThan(again.chunks); // what landed was not sent again
    expect(again.chunksUploaded).toBeLessThanOrEqual(again.chunks - 256); // at least one whole 16 MiB pack
    await loadKernels();
    const v = await openPublishedVersion(objects, { image: 'big', tag: 'latest' });
    expect(v.contentId ?? again.contentId).toBe(again.contentId);
    expect(Buffer.compare(Buffer.from(await v.read(0, v.size)), Buffer.from(data))).toBe(0);
  });
});
