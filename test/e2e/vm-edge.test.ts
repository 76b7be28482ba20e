/**
 * The v86 demo booting lazily from a published image served by the edge handler, in real
 * Chromium: an ext2 image (one file in it) is imported into a volume, published into a
 * directory object store (BLAKE3-named chunks in packs), and served by `stratadisk serve-edge`
 * (the same fetch handler as the Cloudflare worker) on loopback. The page creates its disk as a
 * copy-on-read volume over the edge URL `/IMAGE/latest` (the HttpStore path: range requests,
 * pinned by the ETag, which is the version content ID) and boots before the image is local.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestMissing } from '../../src/v86/guest-node.ts';
import { launchPersistent, mke2fsMissing, openVmPage, pageProblems, profileDir, serveDemo, TMP, type DemoServer } from './harness.ts';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

const missing = guestMissing() ?? mke2fsMissing();
const IMAGE_MIB = 64;

interface RemoteFigures {
  remote?: { remoteBytes: number; localBytes: number; http: { requests: number; bytes?: number } };
}

describe.skipIf(missing !== undefined)(`v86 demo booting from an edge URL (publish + serve-edge)${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let server: DemoServer;
  let edge: ChildProcess | undefined;
  let edgeUrl: string;
  let context: BrowserContext;
  let dir: string;
  let work: string;

  beforeAll(async () => {
    await mkdir(TMP, { recursive: true });
    work = await mkdtemp(join(TMP, 'vm-edge-'));
    const root = join(work, 'root');
    await mkdir(root);
    await writeFile(join(root, 'hello.txt'), 'from-the-edge\n');
    const img = join(work, 'disk.img');
    execFileSync('mke2fs', ['-q', '-t', 'ext2', '-F', '-i', '65536', '-d', root, img, `${IMAGE_MIB}M`]);
    const vol = join(work, 'disk');
    execFileSync(process.execPath, [CLI, 'create', vol, '--size', `${IMAGE_MIB}M`]);
    execFileSync(process.execPath, [CLI, 'import', vol, img]);
    execFileSync(process.execPath, [CLI, 'publish', vol, '--to', join(work, 'published'), '--name', 'guest']);
    edge = spawn(process.execPath, [CLI, 'serve-edge', join(work, 'published'), '--allow-origin', '*'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [first] = (await Promise.race([
      once(edge.stdout!, 'data'),
      once(edge, 'exit').then(() => {
        throw new Error('serve-edge exited before it printed its URL');
      }),
    ])) as [Buffer];
    edgeUrl = `${first.toString().trim().replace(/\/$/, '')}/guest/latest`;
    // the image the edge serves is the file, byte for byte
    const head = await fetch(edgeUrl, { headers: { range: 'bytes=1024-2047' } });
    expect(head.status).toBe(206);
    expect(new Uint8Array(await head.arrayBuffer())).toEqual(new Uint8Array((await readFile(img)).subarray(1024, 2048)));
    server = await serveDemo();
    dir = await profileDir();
    context = await launchPersistent(dir);
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (edge && edge.exitCode === null) {
      edge.kill('SIGTERM');
      await once(edge, 'exit');
    }
    if (dir) await rm(dir, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('boots from /IMAGE/latest before the image is local, and reads the published file', { timeout: 1_200_000 }, async () => {
    const page = await openVmPage(context, server.url);
    await page.selectOption('#backend', 'opfs');
    await page.fill('#vm-name', 'edge');
    await page.fill('#vm-image', edgeUrl);
    await page.evaluate(() => window.__vm!.boot());
    const run = (cmd: string) => page.evaluate((c) => window.__vm!.run(c), cmd);

    expect(await run('cat /mnt/hello.txt')).toBe('from-the-edge\n');
    const booted = (await page.evaluate(() => window.__vm!.info())) as RemoteFigures;
    expect(booted.remote!.remoteBytes).toBeGreaterThan(0); // it runs while most of the image is remote
    expect(booted.remote!.localBytes).toBeGreaterThan(0);
    expect(booted.remote!.http.requests).toBeGreaterThan(0);
    console.log(`vm-edge: booted from ${edgeUrl}: ${booted.remote!.http.requests} requests, ${booted.remote!.localBytes} bytes local of ${IMAGE_MIB} MiB`);

    await run('echo from-guest > /mnt/note.txt && sync');
    expect(await run('cat /mnt/note.txt')).toBe('from-guest\n');
    await page.evaluate(() => window.__vm!.stop());
    expect(pageProblems.get(page)).toEqual([]);
  });
});
