/**
 * The write log in real Chromium (issue 16): a volume on OPFS and on IndexedDB in a worker
 * (src/worker/entry.ts), driven from the page through StrataClient. The page enables the log,
 * writes, marks, reads the view at the mark, restores, and a NEW worker opens the volume again
 * (after a clean close, and after `terminate()` mid-work): marks and restored data survive. A
 * plain `Volume.open` for writing (a worker that attaches no log) is refused.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StrataClient, type BackendSpec, type ProgressEvent } from '../../../src/worker/client.js';
import { newWorker, pattern, rejectsWithCode, uniquePath } from '../worker/helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BS = 16 * KiB;

const workers: Worker[] = [];
function spawn(): { worker: Worker; client: StrataClient } {
  const worker = newWorker();
  workers.push(worker);
  return { worker, client: StrataClient.connect(worker) };
}

afterEach(() => {
  for (const w of workers.splice(0)) w.terminate();
});

/**
 * Where two byte arrays first differ (-1: equal). `toEqual` on megabytes is slow in the browser
 * runner (tens of seconds), so large comparisons go through this.
 */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Open `spec` in a worker that knows nothing of write logs: what Volume.open answers. */
function plainOpen(spec: BackendSpec): Promise<{ writable: string; readOnly: string; message?: string }> {
  const w = new Worker(new URL('./plain-open.worker.ts', import.meta.url), { type: 'module' });
  workers.push(w);
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => resolve(e.data as { writable: string; readOnly: string });
    w.onerror = (e) => reject(new Error(`plain-open worker failed: ${e.message}`));
    w.postMessage(spec);
  });
}

for (const backend of ['opfs', 'idb'] as const) {
  describe(`write log on ${backend} in a worker`, () => {
    it('logs, marks, reads the view at a mark from the page, restores; a new worker sees it all', async () => {
      const spec: BackendSpec = { backend, path: uniquePath(`journal-${backend}`) };
      const one = spawn();
      const v = await one.client.createVolume(spec, { size: 16 * MiB, blockSize: BS });
      const a = pattern(1 * MiB, 11);
      await v.write(0, a.slice()); // before the log: in its base
      expect(await v.journal.status()).toBeNull();
      await v.journal.enable();
      const b = pattern(256 * KiB, 12);
      await v.write(4 * MiB, b.slice());
      await v.write(5 * KiB, pattern(3 * KiB, 13)); // a partial block
      const expectedAtMark = new Uint8Array(6 * MiB);
      expectedAtMark.set(a, 0);
      expectedAtMark.set(pattern(3 * KiB, 13), 5 * KiB);
      expectedAtMark.set(b, 4 * MiB);
      const mark = await v.journal.mark('before-upgrade');
      expect(mark).toMatchObject({ label: 'before-upgrade' });

      await v.write(0, pattern(64 * KiB, 14));
      await v.write(4 * MiB + 32 * KiB, pattern(512 * KiB, 15));
      await v.writeZeroes(8 * MiB, 2 * MiB); // past what the mark had: zero there too
      await v.write(12 * MiB, pattern(BS, 16));
      await v.flush();

      // the view at the mark, read from the page
      const view = await v.journal.view('mark:before-upgrade');
      expect(view.seq).toBe(mark.point);
      expect(view.size).toBe(16 * MiB);
      expect(firstDifference(await view.read(0, 6 * MiB), expectedAtMark)).toBe(-1);
      expect((await view.read(12 * MiB, BS)).every((x) => x === 0)).toBe(true);
      expect((await view.map()).reduce((n, e) => n + e.length, 0)).toBe(16 * MiB);
      // the live volume differs
      expect(firstDifference(await v.read(0, 64 * KiB), pattern(64 * KiB, 14))).toBe(-1);

      // restore to the mark, with progress
      const events: ProgressEvent[] = [];
      const report = await v.journal.restore('mark:before-upgrade', { onProgress: (e) => events.push(e) });
      expect(report.to).toBe(mark.point);
      expect(report.blocks).toBeGreaterThan(0);
      expect(events.at(-1)).toEqual({ done: report.blocks, total: report.blocks });
      expect(firstDifference(await v.read(0, 6 * MiB), expectedAtMark)).toBe(-1);
      expect((await v.read(12 * MiB, BS)).every((x) => x === 0)).toBe(true);
      const marks = (await v.journal.marks()).map((m) => m.label);
      expect(marks).toEqual(['before-upgrade', report.undo, `restored-to-${mark.point}`]);
      await v.close();
      await rejectsWithCode(view.read(0, 1), 'closed');
      await one.client.close();
      one.worker.terminate();

      // a worker that attaches no log may not write (its writes would pass the log by)
      const plain = await plainOpen(spec);
      expect(plain).toMatchObject({ writable: 'unsupported', readOnly: 'opened' });
      expect(plain.message).toMatch(/write log/);

      // a new worker: the log opens with the volume; marks, views and restored data survive
      const two = spawn();
      const again = await two.client.openVolume(spec);
      expect((await again.journal.marks()).map((m) => m.label)).toEqual(marks);
      expect(firstDifference(await again.read(0, 6 * MiB), expectedAtMark)).toBe(-1);
      const undo = await again.journal.view({ mark: report.undo });
      expect(firstDifference(await undo.read(0, 64 * KiB), pattern(64 * KiB, 14))).toBe(-1);
      // and it keeps logging: a new mark, restore back to the undo mark
      await again.write(0, pattern(BS, 17));
      await again.journal.mark('after');
      const back = await again.journal.restore({ mark: report.undo });
      expect(back.to).toBe((await again.journal.marks()).find((m) => m.label === report.undo)!.point);
      expect(firstDifference(await again.read(0, 64 * KiB), pattern(64 * KiB, 14))).toBe(-1);
      expect(firstDifference(await (await again.journal.view('mark:after')).read(0, BS), pattern(BS, 17))).toBe(-1);
      await rejectsWithCode(two.client.openVolume(spec), 'locked');
      await again.close();
      await two.client.close();
      two.worker.terminate();

      const three = spawn();
      await three.client.deleteVolume(spec);
      await rejectsWithCode(three.client.openVolume(spec), 'not-found');
      await three.client.close();
    });

    it('a worker terminated after a mark: a new worker opens the volume with its log, the mark intact', async () => {
      const spec: BackendSpec = { backend, path: uniquePath(`journal-kill-${backend}`) };
      const one = spawn();
      const v = await one.client.createVolume(spec, { size: 4 * MiB, blockSize: BS });
      await v.journal.enable();
      const at = pattern(512 * KiB, 21);
      await v.write(64 * KiB, at.slice());
      await v.journal.mark('m');
      // writes sent after the mark, some never flushed, then the worker is gone
      await v.write(64 * KiB, pattern(128 * KiB, 22));
      await v.flush();
      void v.write(1 * MiB, pattern(256 * KiB, 23)).catch(() => {});
      one.worker.terminate();

      const two = spawn();
      const again = await two.client.openVolume(spec);
      const st = await again.journal.status();
      expect(st?.marks).toBe(1);
      expect(st?.failed).toBeNull();
      const view = await again.journal.view('mark:m');
      expect(firstDifference(await view.read(64 * KiB, 512 * KiB), at)).toBe(-1);
      // the view at the last durable point equals the live volume
      const latest = await again.journal.view('latest');
      expect(firstDifference(await latest.read(0, 4 * MiB), await again.read(0, 4 * MiB))).toBe(-1);
      expect(firstDifference(await again.read(64 * KiB, 128 * KiB), pattern(128 * KiB, 22))).toBe(-1);
      await again.journal.restore('mark:m');
      expect(firstDifference(await again.read(64 * KiB, 512 * KiB), at)).toBe(-1);
      expect((await again.check()).ok).toBe(true);
      await again.close();
      await two.client.deleteVolume(spec);
      await two.client.close();
    });

    it('disables the log from the page: a plain writer opens the volume again', async () => {
      const spec: BackendSpec = { backend, path: uniquePath(`journal-off-${backend}`) };
      const one = spawn();
      const v = await one.client.createVolume(spec, { size: 4 * MiB, blockSize: BS });
      await v.journal.enable();
      await v.write(0, pattern(BS, 31));
      await v.journal.mark('x');
      const view = await v.journal.view('mark:x');
      await v.journal.disable();
      expect(await v.journal.status()).toBeNull();
      await rejectsWithCode(view.read(0, 1), 'closed');
      await v.close();
      await one.client.close();
      expect(await plainOpen(spec)).toMatchObject({ writable: 'opened', readOnly: 'opened' });
      await one.client.close();
      const two = spawn();
      await two.client.deleteVolume(spec);
      await two.client.close();
    });
  });
}
