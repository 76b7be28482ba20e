import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright';
import { launchBrowser, openDemo, pageProblems, serveDemo, type DemoServer } from './harness.js';

// Cross-origin isolation is optional: without COOP/COEP there is no SharedArrayBuffer, and the
// engine must work the same (it passes bytes by transfer, not through shared memory).
describe('the demo without cross-origin isolation', () => {
  let server: DemoServer;
  let browser: Browser;
  beforeAll(async () => {
    server = await serveDemo({ isolated: false });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  for (const backend of ['opfs', 'idb'] as const) {
    it(`${backend}: create, write, snapshot, revert, check`, async () => {
      const context = await browser.newContext();
      const page = await openDemo(context, server.url);
      const outcome = await page.evaluate(async (backend) => {
        const isolated = crossOriginIsolated;
        const sab = typeof SharedArrayBuffer !== 'undefined';
        const client = window.__strata!.client;
        const spec = { backend, path: `volumes/plain-${backend}-${Date.now()}` };
        const v = await client.createVolume(spec, { size: 8 << 20, blockSize: 65536 });
        await v.write(0, new TextEncoder().encode('hello, not isolated'));
        await v.snapshot('s');
        await v.write(0, new TextEncoder().encode('changed            '));
        await v.revert('s');
        const text = new TextDecoder().decode(await v.read(0, 19));
        const report = await v.check();
        await v.close();
        await client.deleteVolume(spec);
        return { isolated, sab, text, ok: report.ok };
      }, backend);
      expect(outcome).toEqual({ isolated: false, sab: false, text: 'hello, not isolated', ok: true });
      expect(pageProblems.get(page)).toEqual([]);
      await context.close();
    });
  }
});
