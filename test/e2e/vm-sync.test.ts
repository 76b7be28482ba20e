/**
 * A guest's `sync` is a barrier: the v86 demo in Chromium boots a Linux guest on an OPFS disk,
 * the guest writes files and runs `sync`, and the browser is SIGKILLed the moment `sync` has
 * returned on the serial console. Relaunched on the same profile, the guest boots from OPFS and
 * every synced byte is back.
 *
 * The window is made deterministic: the adapter's periodic flush is off (`flushIntervalMs:
 * Infinity`) and the guest writes far less than the adapter writes out unasked, so only the guest's
 * FLUSH CACHE (held by src/v86/flush-barrier.ts until the volume's flush resolved) can make the
 * data durable. With `STRATADISK_E2E_NO_BARRIER=1` the same test runs without the hook and fails:
 * the killed browser loses what the guest synced.
 */
import { execFileSync } from 'node:child_process';
import { rm } from 'node:fs/promises';
import type { BrowserContext, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guestMissing } from '../../src/v86/guest-node.ts';
import { launchPersistent, openVmPage, pageProblems, profileDir, serveDemo, type DemoServer } from './harness.ts';

const missing = guestMissing();
const barrier = process.env.STRATADISK_E2E_NO_BARRIER !== '1';

/** Pids of the browser started with profile `dir` (its main process has no --type= switch). */
function browserPids(dir: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(`--user-data-dir=${dir}`) && !l.includes('--type='))
    .map((l) => Number.parseInt(l.trim(), 10))
    .filter((p) => p > 0);
}

async function bootVm(page: Page, name: string): Promise<(cmd: string) => Promise<string>> {
  await page.selectOption('#backend', 'opfs');
  await page.fill('#vm-name', name);
  await page.evaluate(() => window.__vm!.boot());
  return (cmd: string) => page.evaluate((c) => window.__vm!.run(c), cmd);
}

describe.skipIf(missing !== undefined)(`a guest's sync in Chromium${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let server: DemoServer;
  let dir: string;

  beforeAll(async () => {
    server = await serveDemo();
    dir = await profileDir();
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`every byte synced before the browser is SIGKILLed is back after a relaunch (barrier ${barrier ? 'on' : 'off'})`, { timeout: 1_800_000 }, async () => {
    let context: BrowserContext = await launchPersistent(dir);
    const page = await openVmPage(context, server.url);
    await page.evaluate((b) => window.__vm!.configure({ barrier: b, flushIntervalMs: Infinity }), barrier);
    const run = await bootVm(page, 'sync-kill');
    expect(await run('cat /sys/block/sda/queue/write_cache')).toBe(barrier ? 'write back\n' : 'write through\n');
    // The freshly made file system is durable before the test's own writes (the disk's flush).
    await page.evaluate(() => window.__vm!.flush());

    // Random data (its checksum computed in the guest), a text file, a new directory, an append.
    const written = await run(
      'mkdir -p /mnt/d && dd if=/dev/urandom of=/mnt/d/random.bin bs=4k count=48 2>/dev/null && ' +
        'echo synced-text > /mnt/note.txt && seq 1 20000 > /mnt/d/seq.txt && echo appended >> /mnt/d/seq.txt && ' +
        'md5sum /mnt/d/random.bin /mnt/note.txt /mnt/d/seq.txt',
    );
    expect(written.trim().split('\n')).toHaveLength(3);
    const stats0 = (await page.evaluate(() => window.__vm!.stats())) as { guestFlushes: number; volumeFlushes: number };
    await run('sync');
    // `sync` has returned in the guest: kill the browser before anything else can run.
    const pids = browserPids(dir);
    expect(pids).toHaveLength(1);
    process.kill(pids[0]!, 'SIGKILL');
    await context.close().catch(() => {});
    await expect.poll(() => browserPids(dir), { timeout: 10_000 }).toEqual([]);
    console.log(`sync-kill (barrier ${barrier ? 'on' : 'off'}): before sync ${stats0.guestFlushes} guest flushes, ${stats0.volumeFlushes} volume flushes`);

    context = await launchPersistent(dir);
    try {
      const again = await openVmPage(context, server.url);
      const run2 = await bootVm(again, 'sync-kill');
      expect(await run2('md5sum /mnt/d/random.bin /mnt/note.txt /mnt/d/seq.txt 2>&1')).toBe(written);
      expect(await run2('cat /mnt/note.txt; tail -n 1 /mnt/d/seq.txt')).toBe('synced-text\nappended\n');
      await again.evaluate(() => window.__vm!.stop());
      expect(pageProblems.get(again)).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
