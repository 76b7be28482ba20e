/**
 * The v86 demo in real Chromium: a Linux guest boots with its disk on OPFS (through the
 * stratadisk worker), writes a file and syncs, takes a VM snapshot (disk + machine state),
 * changes the file, reverts, and reads the snapshot's content back through its own shell. Then
 * the page is reloaded: the disk and the snapshot are still in OPFS, and restoring the snapshot
 * on a fresh machine gives the file back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext } from 'playwright';
import { guestMissing } from '../../src/v86/guest-node.ts';
import { launchPersistent, openVmPage, pageProblems, profileDir, reloadVm, serveDemo, type DemoServer } from './harness.ts';
import { rm } from 'node:fs/promises';

const missing = guestMissing();

describe.skipIf(missing !== undefined)(`v86 demo in Chromium${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let server: DemoServer;
  let context: BrowserContext;
  let dir: string;

  beforeAll(async () => {
    server = await serveDemo();
    dir = await profileDir();
    context = await launchPersistent(dir);
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });


  it('boots on OPFS, snapshots, reverts, and keeps disk and snapshots across a reload', { timeout: 1_200_000 }, async () => {
    const page = await openVmPage(context, server.url);
    await page.selectOption('#backend', 'opfs');
    await page.fill('#vm-name', 'e2e');
    await page.evaluate(() => window.__vm!.boot());
    const run = (cmd: string) => page.evaluate((c) => window.__vm!.run(c), cmd);

    expect(await run('grep -c " /mnt " /proc/mounts')).toBe('1\n');
    await run('echo from-snapshot > /mnt/note.txt && sync');
    const snap = await page.evaluate(() => window.__vm!.snapshot('s1', true));
    expect(snap.machine).toBe(true);
    await run('echo changed-later > /mnt/note.txt && sync');
    expect(await run('cat /mnt/note.txt')).toBe('changed-later\n');

    expect(await page.evaluate(() => window.__vm!.revert('s1'))).toContain('disk and machine');
    await page.waitForTimeout(300);
    expect(await run('sync; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/note.txt')).toBe('from-snapshot\n');

    // The demo's controls show it: the snapshot table and the block map.
    await expect.poll(() => page.locator('#vm-snaps tbody tr').count()).toBe(1);
    await expect.poll(() => page.locator('#legend li').count(), { timeout: 10_000 }).toBeGreaterThan(0);
    const stats = (await page.evaluate(() => window.__vm!.stats())) as { guestWrites: number; volumeWrites: number };
    expect(stats.volumeWrites).toBeLessThan(stats.guestWrites);

    await run('echo after-revert > /mnt/note.txt && sync');
    await page.evaluate(() => window.__vm!.stop());

    // Reload: everything the page held is gone; OPFS keeps the disk and the machine state.
    await reloadVm(page, 'opfs', 'e2e');
    const list = await page.evaluate(() => window.__vm!.list());
    expect(list).toMatchObject([{ name: 's1', machine: true }]);
    // A disk-only snapshot of a stopped VM.
    expect(await page.evaluate(() => window.__vm!.snapshot('after-reload', false))).toMatchObject({ machine: false });
    // Restore s1 on a fresh machine: the guest resumes where s1 was taken.
    expect(await page.evaluate(() => window.__vm!.revert('s1'))).toContain('disk and machine');
    await page.waitForTimeout(300);
    expect(await run('sync; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/note.txt')).toBe('from-snapshot\n');
    await page.evaluate(() => window.__vm!.stop());
    expect(pageProblems.get(page)).toEqual([]);
  });
});
