/**
 * The demo's "Write log" card in real Chromium: turn the log on, write through the Write card,
 * add a mark, write more, move the time slider to the mark (the block map and the hex view show
 * the old content), restore to it (progress, the undo mark shown), undo, and turn the log off.
 * Saves test/.tmp/demo-journal-<backend>.png with the slider at the mark.
 *
 * Then vm.html (when the v86 guest is built: build/guest/): a guest on OPFS with the write log
 * on writes a file, takes a VM snapshot (which adds a mark with its machine state), writes
 * again and marks the disk only, writes a third time; "Rewind the VM to here" on the snapshot's
 * mark brings the running guest and its disk back, and on the disk-only mark reboots the guest
 * on the disk as it was. Saves test/.tmp/vm-rewind.png after the first rewind.
 */
import type { Browser, BrowserContext, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { guestMissing } from '../../src/v86/guest-node.ts';
import { act, chooseVolume, idle, launchBrowser, openDemo, openVmPage, pageProblems, serveDemo, status, TMP, type DemoServer } from './harness.js';

let server: DemoServer;
let browser: Browser;

beforeAll(async () => {
  server = await serveDemo();
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

async function write(page: Page, pattern: 'stamp' | 'fill', fields: Record<string, string>): Promise<void> {
  await page.selectOption('#pattern', pattern);
  for (const [id, value] of Object.entries(fields)) await page.fill(`#p-${id}`, value);
  const s = await act(page, '#btn-write');
  expect(s.kind, s.text).toBe('ok');
}

/** Waits until the card shows the point `shown` ('live' or a seq) in the map and the hex view. */
async function shown(page: Page, point: string): Promise<void> {
  await page.waitForFunction((p) => document.getElementById('jl-at')!.dataset.shown === p, point);
}

async function legendBlocks(page: Page, key: string): Promise<number> {
  const text = (await page.locator(`#legend li[data-key="${key}"]`).textContent()) ?? '';
  return Number(/ (\d+) blocks?/.exec(text)?.[1]);
}

async function hexView(page: Page, offset: string, length: string): Promise<void> {
  await page.fill('#jl-offset', offset);
  await page.fill('#jl-length', length);
  await page.locator('#jl-length').dispatchEvent('change');
}

describe.each(['opfs', 'idb'] as const)('the write log card on %s', (backend) => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
    page = await openDemo(context, server.url);
  });
  afterAll(async () => {
    await context?.close();
  });

  it('marks, moves through time with the slider, restores to a mark and undoes it', async () => {
    await chooseVolume(page, backend, `jl-${backend}`, '64M', 65536);
    expect((await act(page, '#btn-create')).kind).toBe('ok');
    // Off: only "turn on" can act; the slider and restore wait.
    expect(await page.locator('#jl-state').textContent()).toContain('off');
    expect(await page.isDisabled('#btn-jl-mark')).toBe(true);
    expect(await page.isDisabled('#jl-slider')).toBe(true);
    expect(await page.isDisabled('#btn-jl-restore')).toBe(true);

    let s = await act(page, '#btn-jl-enable');
    expect(s.kind, s.text).toBe('ok');
    expect(await page.locator('#jl-state').textContent()).toContain('on');
    expect(await page.isDisabled('#btn-jl-enable')).toBe(true);

    await write(page, 'stamp', { offset: '0', text: 'BEFORE' });
    await write(page, 'fill', { offset: '8M', length: '1M', byte: '0x11' }); // blocks 128..143
    await page.fill('#jl-label', 'm1');
    s = await act(page, '#btn-jl-mark');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain('Mark "m1"');
    expect(await page.inputValue('#jl-label')).toBe('m2');

    await write(page, 'stamp', { offset: '0', text: 'AFTER' });
    await write(page, 'fill', { offset: '8M', length: '2M', byte: '0x22' }); // blocks 128..159
    expect((await act(page, '#btn-flush')).kind).toBe('ok');

    // At the right end the slider is the live volume; nothing to restore there.
    await shown(page, 'live');
    expect(await page.locator('#jl-at').textContent()).toContain('live');
    expect(await page.isDisabled('#btn-jl-restore')).toBe(true);
    expect(await page.locator('#jl-hex-live-text').textContent()).toContain('AFTER');

    // The mark is a tick under the slider; clicking it moves the slider there.
    const m1 = await page.evaluate(async () => (await window.__strata!.volume!.journal.marks()).find((m) => m.label === 'm1')!);
    const tick = page.locator('#jl-ticks button', { hasText: 'm1' });
    expect(await tick.count()).toBe(1);
    await tick.click();
    await shown(page, String(m1.point));
    expect(await page.inputValue('#jl-slider')).toBe(String(m1.point));
    expect(await page.locator('#jl-at').textContent()).toContain('mark "m1"');
    expect(await page.locator('#map-when').textContent()).toContain(`at record ${m1.point}`);
    // The hex view: the old stamp at the mark, the new one live, the differences marked.
    expect(await page.locator('#jl-hex-at-text').textContent()).toContain('BEFORE');
    expect(await page.locator('#jl-hex-live-text').textContent()).toContain('AFTER');
    expect(await page.locator('#jl-hex-at .diff').count()).toBeGreaterThan(0);
    // The block map at the mark: the stamp's block and the 16 filled ones were written in the log.
    expect(await legendBlocks(page, 'journal')).toBe(1 + 16);
    await page.screenshot({ path: join(TMP, `demo-journal-${backend}.png`), fullPage: true });
    // Bytes of block 150: zero at the mark, 0x22 live.
    await hexView(page, String(150 * 65536), '16');
    await page.waitForFunction(() => document.getElementById('jl-hex-live')!.textContent!.includes('22 22'));
    expect(await page.locator('#jl-hex-at').textContent()).toContain('00 00 00 00');

    // Back to live with the keyboard: the map is the live one again.
    await page.locator('#jl-slider').focus();
    await page.keyboard.press('End');
    await shown(page, 'live');
    expect(await page.locator('#map-when').textContent()).toBe('live');
    expect(await page.locator('#legend li[data-key="journal"]').count()).toBe(0);

    // Restore to the mark: no question for a mark; progress, then the undo mark.
    await tick.click();
    await shown(page, String(m1.point));
    expect(await page.locator('#btn-jl-restore').textContent()).toBe('Restore to here');
    let dialogs = 0;
    page.on('dialog', (d) => {
      dialogs++;
      void d.dismiss();
    });
    s = await act(page, '#btn-jl-restore');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain('Restored to mark m1');
    expect(dialogs).toBe(0);
    expect(await page.locator('#jl-result').textContent()).toMatch(/Restored to record \d+: 33 blocks .* rewritten\. To undo, restore to mark before-restore-/);
    expect(await page.getAttribute('#jl-progress', 'value')).toBe(await page.getAttribute('#jl-progress', 'max'));
    await shown(page, 'live');
    await hexView(page, '0', '48');
    await page.waitForFunction(() => document.getElementById('jl-hex-live-text')!.textContent!.includes('BEFORE'));
    const live = await page.evaluate(async () => {
      const v = window.__strata!.volume!;
      return [...(await v.read(150 * 65536, 4)), ...(await v.read(130 * 65536, 4))];
    });
    expect(live).toEqual([0, 0, 0, 0, 0x11, 0x11, 0x11, 0x11]);
    const undo = (await page.locator('#jl-result .undo-mark').textContent())!;
    const undoTick = page.locator('#jl-ticks button', { hasText: undo.slice(0, 16) });
    expect(await undoTick.count()).toBeGreaterThan(0);

    // A point that is not a mark asks first; dismissing it changes nothing.
    const notMark = m1.point + 1;
    await page.locator('#jl-slider').fill(String(notMark));
    await shown(page, String(notMark));
    expect(await page.locator('#btn-jl-restore').textContent()).toContain('not a mark');
    await page.locator('#btn-jl-restore').click();
    expect(dialogs).toBe(1);
    expect(await page.evaluate(async () => [...(await window.__strata!.volume!.read(0, 6))])).toEqual([...new TextEncoder().encode('BEFORE')]);

    // Undo: restore to the undo mark brings the later writes back.
    await undoTick.first().click();
    await page.waitForFunction(() => document.getElementById('jl-at')!.dataset.shown !== 'live');
    s = await act(page, '#btn-jl-restore');
    expect(s.kind, s.text).toBe('ok');
    expect(await page.evaluate(async () => [...(await window.__strata!.volume!.read(150 * 65536, 2))])).toEqual([0x22, 0x22]);
    await page.waitForFunction(() => document.getElementById('jl-hex-live-text')!.textContent!.includes('AFTER'));

    // Off: asks, deletes the log; the slider waits again.
    page.removeAllListeners('dialog');
    page.once('dialog', (d) => void d.accept());
    s = await act(page, '#btn-jl-disable');
    expect(s.kind, s.text).toBe('ok');
    expect(await page.locator('#jl-state').textContent()).toContain('off');
    expect(await page.isDisabled('#jl-slider')).toBe(true);
    expect(await page.locator('#jl-ticks li').count()).toBe(0);
    expect(pageProblems.get(page)).toEqual([]);
  });
});

const missing = guestMissing();

describe.skipIf(missing !== undefined)(`vm.html: rewind the VM to a mark${missing ? ` (skipped: ${missing})` : ''}`, () => {
  let context: BrowserContext;

  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  });
  afterAll(async () => {
    await context?.close();
  });

  it("rewinds to a snapshot's mark (machine state) and to a disk-only mark (reboot)", { timeout: 1_800_000 }, async () => {
    const page = await openVmPage(context, server.url);
    await page.selectOption('#backend', 'opfs');
    await page.fill('#vm-name', 'jl');
    await page.evaluate(() => window.__vm!.attach());
    expect(await page.isDisabled('#btn-rewind')).toBe(true);
    expect(await page.isDisabled('#btn-mark')).toBe(true);
    await page.locator('#btn-log-on').click();
    await idle(page);
    expect((await status(page)).kind).toBe('ok');
    expect(await page.locator('#log-state').textContent()).toContain('write log on');

    await page.evaluate(() => window.__vm!.boot());
    const run = (cmd: string) => page.evaluate((c) => window.__vm!.run(c), cmd);
    await run('echo first > /mnt/note.txt && sync');
    // A snapshot with the log on adds a mark of its name, with the machine state.
    expect(await page.evaluate(() => window.__vm!.snapshot('s1', true))).toMatchObject({ machine: true });
    await run('echo second > /mnt/note.txt && sync');
    await page.evaluate(() => window.__vm!.mark('disk-only', false));
    await run('echo third > /mnt/note.txt && sync');
    // the VM snapshot's own mark (VmSnapshots: vm:NAME), no second one from the page
    expect((await page.evaluate(() => window.__vm!.marks())).map((m) => m.label)).toEqual(['vm:s1', 'disk-only']);
    // With the log on, the volume refuses revert: the table's Revert buttons wait, rewind acts.
    expect(await page.locator('#vm-snaps button[data-revert="s1"]').isDisabled()).toBe(true);
    expect(await page.locator('#vm-marks option').allTextContents()).toEqual([expect.stringMatching(/^disk-only · .* · disk$/), expect.stringMatching(/^vm:s1 · .* · disk \+ machine$/)]);

    // Rewind to s1 from the page: disk and machine state; the guest continues from that instant.
    await page.selectOption('#vm-marks', 'vm:s1');
    await page.locator('#btn-rewind').click();
    await idle(page, 600_000);
    let s = await status(page);
    expect(s.kind, s.text).toBe('ok');
    expect(await page.locator('#rewind-result').textContent()).toMatch(/Rewound to mark vm:s1 \(record \d+\): \d+ disk blocks? restored; machine state restored.*To undo, rewind to before-restore-/);
    expect(await run('sync; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/note.txt')).toBe('first\n');
    await page.screenshot({ path: join(TMP, 'vm-rewind.png'), fullPage: true });

    // Rewind to the disk-only mark: the disk as it was, the machine rebooted on it.
    await page.selectOption('#vm-marks', 'disk-only');
    await page.locator('#btn-rewind').click();
    await idle(page, 1_200_000);
    s = await status(page);
    expect(s.kind, s.text).toBe('ok');
    expect(await page.locator('#rewind-result').textContent()).toContain('rebooted on the rewound disk');
    expect(await run('cat /mnt/note.txt')).toBe('second\n');
    await page.evaluate(() => window.__vm!.stop());
    expect(pageProblems.get(page)).toEqual([]);
  });
});
