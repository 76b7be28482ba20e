/**
 * Click-through of the demo in real Chromium: create a volume, write, snapshot, write again,
 * compare, revert, delete a snapshot, check; the UI must show each state, and the screenshot's
 * block map must not be blank. Once on OPFS, once on IndexedDB.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { act, canvasColours, chooseVolume, idle, launchBrowser, openDemo, pageProblems, serveDemo, status, TMP, type DemoServer } from './harness.js';

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

async function writePattern(page: Page, pattern: 'random' | 'stamp' | 'fill' | 'zero', fields: Record<string, string>): Promise<string> {
  await page.selectOption('#pattern', pattern);
  for (const [id, value] of Object.entries(fields)) await page.fill(`#p-${id}`, value);
  const s = await act(page, '#btn-write');
  expect(s.kind, s.text).toBe('ok');
  return s.text;
}

async function snapshotNames(page: Page): Promise<string[]> {
  return page.locator('#snap-list tr[data-snapshot]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.snapshot!));
}

async function legend(page: Page): Promise<string[]> {
  return page.locator('#legend li').allTextContents();
}

describe.each(['opfs', 'idb'] as const)('demo click-through on %s', (backend) => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    page = await openDemo(context, server.url);
  });
  afterAll(async () => {
    await context?.close();
  });

  it('creates a volume and writes patterns', async () => {
    expect(await page.locator('#badge-isolated').textContent()).toBe('cross-origin isolated');
    await chooseVolume(page, backend, `tour-${backend}`, '64M', 65536);
    let s = await act(page, '#btn-create');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain(`Created tour-${backend} (${backend})`);
    expect(await page.locator('#known li').first().textContent()).toContain(`tour-${backend}`);

    expect(await writePattern(page, 'random', { count: '40' })).toContain('Wrote 40 random blocks');
    expect(await writePattern(page, 'stamp', { offset: '0', text: 'BEFORE' })).toContain('Stamped "BEFORE');
    // 32 blocks at 16 MiB, zeroed later on top of a snapshot (so they become known-zero blocks).
    expect(await writePattern(page, 'fill', { offset: '16M', length: '2M', byte: '0x33' })).toContain('Filled 2 MiB at 16777216 with 0x33');
    s = await act(page, '#btn-flush');
    expect(s.text).toContain('Flushed');
    const active = (await legend(page)).find((l) => l.includes('(active)'));
    const blocks = Number(/ (\d+) blocks/.exec(active ?? '')?.[1]);
    expect(blocks).toBeGreaterThanOrEqual(40 + 32 - 40 + 1); // random blocks may overlap the fill and the stamp
    expect(blocks).toBeLessThanOrEqual(40 + 32 + 1);
  });

  it('takes snapshots, writes again and compares a snapshot with live', async () => {
    await page.fill('#snap-name', 'snap1');
    let s = await act(page, '#btn-snapshot');
    expect(s.text).toMatch(/^Snapshot snap1 taken/);
    expect(await snapshotNames(page)).toEqual(['snap1']);
    expect(await page.inputValue('#snap-name')).toBe('snap2');

    await writePattern(page, 'fill', { offset: '4M', length: '3M', byte: '0x5a' });
    await writePattern(page, 'random', { count: '12' });
    await writePattern(page, 'stamp', { offset: '0', text: 'AFTER' }); // after the random blocks, which may hit block 0
    s = await act(page, '#btn-snapshot');
    expect(s.text).toMatch(/^Snapshot snap2 taken/);
    await writePattern(page, 'stamp', { offset: '60M', text: 'LATER' });
    expect(await snapshotNames(page)).toEqual(['snap1', 'snap2']);

    const l = await legend(page);
    expect(l.filter((x) => x.includes('snapshot snap1'))).toHaveLength(1);
    expect(l.filter((x) => x.includes('snapshot snap2'))).toHaveLength(1);
    expect(l.filter((x) => x.includes('(active)'))).toHaveLength(1);

    await page.selectOption('#cmp-snap', 'snap1');
    await page.fill('#cmp-offset', '0');
    await page.fill('#cmp-length', '48');
    s = await act(page, '#btn-compare');
    expect(s.text).toContain('live and snap1 differ');
    expect(await page.locator('#cmp-live-text').textContent()).toContain('AFTER');
    expect(await page.locator('#cmp-snapshot-text').textContent()).toContain('BEFORE');
    expect(await page.locator('#cmp-live .diff').count()).toBeGreaterThan(0);
  });

  it('reverts to a snapshot and deletes another', async () => {
    let s = await act(page, '#snap-list tr[data-snapshot="snap1"] button[data-act="revert"]');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain('Reverted to snap1');
    const l = await legend(page);
    expect(l.find((x) => x.includes('(active)'))).toMatch(/ 0 blocks/);

    // Live now reads what snap1 holds.
    await page.selectOption('#cmp-snap', 'snap1');
    s = await act(page, '#btn-compare');
    expect(s.text).toContain('live and snap1 are the same');
    expect(await page.locator('#cmp-live-text').textContent()).toContain('BEFORE');

    s = await act(page, '#snap-list tr[data-snapshot="snap2"] button[data-act="delete"]');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain('Deleted snapshot snap2');
    expect(await snapshotNames(page)).toEqual(['snap1']);

    // Some new work on top of snap1, so the map shows a base layer, an active layer and zeros.
    await writePattern(page, 'random', { count: '20' });
    await writePattern(page, 'zero', { offset: '16M', length: '2M' });
    await writePattern(page, 'fill', { offset: '32M', length: '1M', byte: '0x11' });
  });

  it('checks the volume with progress, and the screenshot is not blank', async () => {
    const s = await act(page, '#btn-check');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toMatch(/^Check clean/);
    expect(await page.locator('#check-result').textContent()).toMatch(/^clean: \d+ layers, \d+ blocks/);
    expect(await page.locator('#check-progress').evaluate((p) => (p as HTMLProgressElement).position)).toBe(1);

    const l = await legend(page);
    expect(l.some((x) => x.includes('snapshot snap1'))).toBe(true);
    expect(l.some((x) => x.includes('(active)'))).toBe(true);
    expect(l.find((x) => x.startsWith('zero'))).toMatch(/^zero 32 blocks/);
    expect(l.some((x) => x.startsWith('unallocated'))).toBe(true);

    const info = await page.locator('#usage-text').textContent();
    expect(info).toMatch(/used of/);

    // A block map with two layers, zeros and unallocated cells plus the grid: well over 3 colours.
    expect(await canvasColours(page)).toBeGreaterThanOrEqual(5);
    const file = join(TMP, backend === 'opfs' ? 'demo.png' : 'demo-idb.png');
    await page.screenshot({ path: file, fullPage: true });
    expect((await stat(file)).size).toBeGreaterThan(20_000);
    expect(pageProblems.get(page)).toEqual([]);
  });

  it('writes a picked file with a progress bar', async () => {
    const bytes = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 13 + (i >> 12)) & 255;
    await page.setInputFiles('#file', { name: 'blob.bin', mimeType: 'application/octet-stream', buffer: bytes });
    await page.fill('#file-offset', '40M');
    const s = await act(page, '#btn-file');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain('Wrote blob.bin (5 MiB) at 41943040 and flushed');
    expect(await page.locator('#write-progress').evaluate((p) => (p as HTMLProgressElement).position)).toBe(1);
    const same = await page.evaluate(async (len) => {
      const v = window.__strata!.volume!;
      const back = await v.read(40 * 1024 * 1024, len);
      for (let i = 0; i < len; i++) if (back[i] !== ((i * 13 + (i >> 12)) & 255)) return i;
      return -1;
    }, bytes.length);
    expect(same).toBe(-1);
  });

  it('closes and deletes the volume', async () => {
    let s = await act(page, '#btn-close');
    expect(s.text).toContain(`Closed tour-${backend}`);
    expect(await page.locator('#vol-info').textContent()).toBe('No volume open.');
    // Reopen from the list of known volumes.
    s = await act(page, `#known li:has-text("tour-${backend}") button[data-open]`);
    expect(s.text).toContain(`Opened tour-${backend} (${backend})`);
    expect(await snapshotNames(page)).toEqual(['snap1']);
    // Deleting the open volume closes it first.
    s = await act(page, '#btn-delete');
    expect(s.kind, s.text).toBe('ok');
    s = await act(page, '#btn-open');
    expect(s.kind).toBe('error');
    expect(s.code).toBe('not-found');
    expect((await status(page)).text).toContain('not-found');
  });
});

describe('demo on bigger volumes', () => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    page = await openDemo(context, server.url);
  });
  afterAll(async () => {
    await context?.close();
  });

  it('groups blocks per cell on a 1 TiB volume', async () => {
    await chooseVolume(page, 'memory', 'huge', '1T', 65536);
    const s = await act(page, '#btn-create');
    expect(s.kind, s.text).toBe('ok');
    expect(s.text).toContain('1 TiB, 64 KiB blocks');
    await writePattern(page, 'random', { count: '64' });
    expect(await page.locator('#map-scale').textContent()).toBe('4096 cells · 4096 blocks per cell');
    const l = await legend(page);
    expect(l.find((x) => x.includes('(active)'))).toMatch(/ 64 blocks/);
    expect(l.find((x) => x.startsWith('unallocated'))).toMatch(/ 16777152 blocks/);
    // Grid, unallocated and the active layer's colour at least.
    expect(await canvasColours(page)).toBeGreaterThanOrEqual(3);
    await page.locator('#card-map').screenshot({ path: join(TMP, 'demo-1tib-map.png') });
    // Memory volumes are not remembered: they end with the worker.
    expect(await page.locator('#known').textContent()).not.toContain('huge');
  });

  it('cancels a running check', async () => {
    await chooseVolume(page, 'idb', 'cancel-me', '256M', 65536);
    expect((await act(page, '#btn-create')).kind).toBe('ok');
    await writePattern(page, 'fill', { offset: '0', length: '160M', byte: '0x77' });
    await page.locator('#btn-check').click();
    await page.locator('#check-result', { hasText: /checking… [1-9]/ }).waitFor({ timeout: 30_000 });
    await page.locator('#btn-check-cancel').click();
    await idle(page);
    const s = await status(page);
    expect(s.kind).toBe('error');
    expect(s.code).toBe('aborted');
    expect(await page.locator('#check-result').textContent()).toBe('check cancelled');
    expect(await page.locator('#btn-check-cancel').isDisabled()).toBe(true);
    // A full check afterwards is clean.
    const again = await act(page, '#btn-check');
    expect(again.text).toMatch(/^Check clean/);
  });
});
