/**
 * The mirror job in real Chromium: a volume in OPFS (worker host) copied to IndexedDB while the
 * page keeps writing to it, then the handle switches over to the IndexedDB copy.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { JobInfo } from '../../../src/jobs/job.js';
import { StrataClient } from '../../../src/worker/client.js';
import { newWorker, pattern, uniquePath } from '../worker/helpers.js';

const KiB = 1024;

/** vitest's toEqual walks typed arrays element by element with a diff: minutes for MiBs. */
function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
const workers: Worker[] = [];
afterEach(() => {
  for (const w of workers.splice(0)) w.terminate();
});

describe('mirror job in Chromium', () => {
  for (const flatten of [false, true]) {
    it(`OPFS -> IndexedDB (${flatten ? 'flattened' : 'all layers'}) while the page writes, then switches over`, async () => {
      const worker = newWorker();
      workers.push(worker);
      const client = StrataClient.connect(worker);
      const src = { backend: 'opfs' as const, path: uniquePath('mirror-src') };
      const dst = { backend: 'idb' as const, path: uniquePath('mirror-dst') };
      const bs = 4 * KiB;
      const size = 512 * bs;
      const v = await client.createVolume(src, { size, blockSize: bs });
      const model = new Uint8Array(size);
      const put = async (block: number, seed: number) => {
        const data = pattern(bs, seed);
        model.set(data, block * bs);
        await v.write(block * bs, data);
      };
      for (let b = 0; b < 512; b += 2) await put(b, b + 1);
      await v.snapshot('base');
      const base = model.slice();
      for (let b = 1; b < 512; b += 4) await put(b, 10_000 + b);
      await v.flush();

      const events: JobInfo[] = [];
      let done = false;
      const job = v.mirror(dst, { flatten, onProgress: (i) => events.push(i) }).finally(() => (done = true));
      let n = 0;
      while (!done) {
        await put((n * 37) % 512, 50_000 + n);
        n++;
      }
      const info = await job;
      expect(n).toBeGreaterThan(0);
      expect(info.state).toBe('completed');
      expect(info.progress.done).toBeGreaterThan(0);
      expect(events.length).toBeGreaterThan(0);
      // the handle is the IndexedDB copy now: it reads what was written and takes more writes
      for (let i = 0; i < 10; i++) await put((i * 101) % 512, 90_000 + i);
      expect(same(await v.read(0, size), model)).toBe(true);
      await v.close();

      const copy = await client.openVolume(dst, { readOnly: true });
      expect(same(await copy.read(0, size), model)).toBe(true);
      expect((await copy.snapshots()).map((s) => s.name)).toEqual(flatten ? [] : ['base']);
      if (!flatten) expect(same(await (await copy.openSnapshot('base')).read(0, size), base)).toBe(true);
      expect((await copy.check()).ok).toBe(true);
      await copy.close();
      // the original in OPFS is intact (as of the switch-over) and still a volume
      const orig = await client.openVolume(src, { readOnly: true });
      expect(same(await (await orig.openSnapshot('base')).read(0, size), base)).toBe(true);
      await orig.close();
      await client.deleteVolume(src);
      await client.deleteVolume(dst);
      await client.close();
    });
  }
});
