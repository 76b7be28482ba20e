/**
 * The v86 demo booting lazily from an image server, with the disk on IndexedDB, in real
 * Chromium. The test makes an ext2 image on the host (mke2fs -d, one file in it) and serves it
 * with range requests; the page creates the disk as a copy-on-read volume over that URL and
 * boots before the image is local (the block map shows remote blocks). The guest reads the
 * image's file, writes one of its own and syncs; a VM snapshot is taken and the stream button
 * fetches the rest while the guest runs. Then the image server is stopped and the page is
 * reloaded: the disk, the snapshot and the guest's file are still there, read from IndexedDB
 * alone. (This is also the IndexedDB reload test; one boot, the second start restores the
 * machine state instead of booting again.)
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startImageServer, type ImageServer } from '../../src/bench/image-server.ts';
import { guestMissing } from '../../src/v86/guest-node.ts';
import { launchPersistent, mke2fsMissing, openVmPage, pageProblems, profileDir, reloadVm, serveDemo, TMP, type DemoServer } from './harness.ts';

const missing = guestMissing() ?? mke2fsMissing();
const IMAGE_MIB = 128;

interface RemoteFigures {
  remote?: { remoteBytes: number; localBytes: number; http: { requests: number } };
}

describe.skipIf(missing !== undefined)(`v86 demo booting from an image server, disk on IndexedDB${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let server: DemoServer;
  let images: ImageServer;
  let context: BrowserContext;
  let dir: string;
  let work: string;

  beforeAll(async () => {
    await mkdir(TMP, { recursive: true });
    work = await mkdtemp(join(TMP, 'vm-image-'));
    const root = join(work, 'root');
    await mkdir(root);
    await writeFile(join(root, 'hello.txt'), 'from-the-image\n');
    const img = join(work, 'disk.img');
    // The guest's /init mounts an existing ext2 as is (it formats only a disk without one).
    execFileSync('mke2fs', ['-q', '-t', 'ext2', '-F', '-i', '65536', '-d', root, img, `${IMAGE_MIB}M`]);
    images = await startImageServer(new Uint8Array(await readFile(img)));
    server = await serveDemo();
    dir = await profileDir();
    context = await launchPersistent(dir);
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    await images?.close().catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
    if (work) await rm(work, { recursive: true, force: true });
  });


  it('boots before the image is local, streams the rest, and keeps the disk in IndexedDB across a reload (server gone)', { timeout: 1_200_000 }, async () => {
    const page = await openVmPage(context, server.url);
    await page.selectOption('#backend', 'idb');
    await page.fill('#vm-name', 'lazy');
    await page.fill('#vm-image', images.url);
    await page.evaluate(() => window.__vm!.boot());
    const run = (cmd: string) => page.evaluate((c) => window.__vm!.run(c), cmd);

    expect(await run('cat /mnt/hello.txt')).toBe('from-the-image\n');
    const booted = (await page.evaluate(() => window.__vm!.info())) as RemoteFigures;
    expect(booted.remote!.remoteBytes).toBeGreaterThan(0); // it runs while most of the image is remote
    expect(booted.remote!.localBytes).toBeGreaterThan(0);
    await expect.poll(() => page.locator('#legend li[data-key="remote"]').count(), { timeout: 10_000 }).toBe(1);

    await run('echo from-guest > /mnt/note.txt && sync');
    expect(await page.evaluate(() => window.__vm!.snapshot('s1', true))).toMatchObject({ machine: true });

    // Stream the rest while the guest keeps running.
    await page.locator('#cor-stream').click();
    await expect.poll(() => page.locator('#cor-result').textContent(), { timeout: 600_000, interval: 1000 }).toContain('every block is local');
    expect(await run('cat /mnt/note.txt')).toBe('from-guest\n');
    const streamed = (await page.evaluate(() => window.__vm!.info())) as RemoteFigures;
    expect(streamed.remote!.remoteBytes).toBe(0);
    await page.evaluate(() => window.__vm!.stop());

    // Offline: the image server is gone; reload; everything comes from IndexedDB.
    await images.close();
    await reloadVm(page, 'idb', 'lazy');
    expect(await page.evaluate(() => window.__vm!.list())).toMatchObject([{ name: 's1', machine: true }]);
    expect(await page.evaluate(() => window.__vm!.revert('s1'))).toContain('disk and machine');
    await page.waitForTimeout(300);
    expect(await run('sync; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/note.txt /mnt/hello.txt')).toBe('from-guest\nfrom-the-image\n');
    await page.evaluate(() => window.__vm!.stop());
    expect(pageProblems.get(page)).toEqual([]);
  });
});
