import { describe, expect, it } from 'vitest';
import { consolidate, planConsolidation } from '../../../src/jobs/consolidate.js';
import { JobJournal } from '../../../src/jobs/job-journal.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { JitterNamespace, MemoryNamespace, buildChain, compare, randomWrite } from './consolidate-helpers.js';

/** Run `job` while a writer writes random blocks (and flushes now and then) until it ends. */
async function withWriter(vol: Volume, model: Parameters<typeof randomWrite>[1], rng: Rng, job: { done: Promise<void> }): Promise<number> {
  let finished = false;
  const end = job.done.finally(() => {
    finished = true;
  });
  let writes = 0;
  while (!finished) {
    await randomWrite(vol, model, rng, 1000 + writes);
    if (writes % 7 === 6) await vol.flush();
    writes++;
  }
  await end;
  return writes;
}

describe('online consolidation', () => {
  for (const direction of ['auto', 'down', 'up'] as const) {
    it(`deletes the active layer's parent snapshot (${direction}) while a writer writes; every view matches the model`, async () => {
      const rng = new Rng(7);
      const ns = new JitterNamespace(new MemoryNamespace(), new Rng(70));
      const { vol, model } = await buildChain(ns, rng);
      const before = vol.info().layers.length;
      // small batches so the writer interleaves with many of them
      const job = consolidate(vol, { op: 'delete-snapshot', name: 's2' }, { direction, flushEvery: 8 * 4096, batchBytes: 2 * 4096 });
      model.snaps.delete('s2');
      const writes = await withWriter(vol, model, rng, job);
      expect(writes).toBeGreaterThan(0);
      expect(job.state).toBe('completed');
      expect(vol.info().layers.length).toBe(before - 1);
      expect(await compare(vol, model)).toBeNull();
      await vol.close();
      const again = await Volume.open(ns);
      expect(await compare(again, model)).toBeNull();
      expect((await again.check()).ok).toBe(true);
      expect((await JobJournal.open(ns)).records()).toEqual([]);
      await again.close();
    });
  }

  for (const direction of ['down', 'up'] as const) {
    it(`deletes a middle snapshot (${direction}) while a writer writes`, async () => {
      const rng = new Rng(11);
      const ns = new JitterNamespace(new MemoryNamespace(), new Rng(110));
      const { vol, model } = await buildChain(ns, rng);
      const job = consolidate(vol, { op: 'delete-snapshot', name: 's1' }, { direction, batchBytes: 3 * 4096 });
      model.snaps.delete('s1');
      await withWriter(vol, model, rng, job);
      expect(job.state).toBe('completed');
      expect(await compare(vol, model)).toBeNull();
      expect(vol.layerChain().length).toBe(3);
      await vol.close();
      const again = await Volume.open(ns);
      expect(await compare(again, model)).toBeNull();
      await again.close();
    });
  }

  it('commit merges the active layer into its parent, only when told to drop the parent snapshot', async () => {
    const rng = new Rng(3);
    const ns = new JitterNamespace(new MemoryNamespace(), new Rng(30));
    const { vol, model } = await buildChain(ns, rng, 1);
    expect(() => consolidate(vol, { op: 'commit' })).toThrow(/--drop-snapshot/);
    const job = consolidate(vol, { op: 'commit', dropSnapshot: true }, { batchBytes: 4096 });
    expect(job.plan.direction).toBe('down');
    model.snaps.delete('s0');
    await withWriter(vol, model, rng, job);
    expect(vol.layerChain().length).toBe(1);
    expect(await compare(vol, model)).toBeNull();
    expect(() => consolidate(vol, { op: 'commit' })).toThrow(/no parent/);
    await vol.close();
  });

  it('refuses to commit into a parent shared by two branches, and blocks snapshots while it runs', async () => {
    const rng = new Rng(5);
    const ns = new MemoryNamespace();
    const { vol } = await buildChain(ns, rng, 2);
    await vol.revert('s0'); // s0's layer now has two children: s1's layer and the new active one
    expect(() => consolidate(vol, { op: 'commit', dropSnapshot: true })).toThrow(/shared by 2 branches/);
    const plan = planConsolidation(vol.manifest, { op: 'delete-snapshot', name: 's0' }, () => 0);
    expect(plan.action).toBe('keep');
    const job = consolidate(vol, { op: 'delete-snapshot', name: 's1' });
    await expect(vol.snapshot('x')).rejects.toMatchObject({ code: 'locked' });
    expect(() => consolidate(vol, { op: 'delete-snapshot', name: 's0' })).toThrow(/consolidate job runs/);
    await job.done;
    await vol.snapshot('x');
    await vol.close();
  });

  it('pause, resume and cancel; a cancelled consolidation is finished by the next open', async () => {
    const rng = new Rng(9);
    const ns = new MemoryNamespace();
    const { vol, model } = await buildChain(ns, rng);
    const job = consolidate(vol, { op: 'delete-snapshot', name: 's2' }, { direction: 'down', rateLimit: 4096 * 8, batchBytes: 4096, journal: true });
    model.snaps.delete('s2');
    job.pause();
    await new Promise((r) => setTimeout(r, 20));
    expect(job.state).toBe('paused');
    job.resume();
    await new Promise((r) => setTimeout(r, 50));
    job.cancel();
    await expect(job.done).rejects.toMatchObject({ code: 'aborted' });
    expect(job.state).toBe('cancelled');
    for (let i = 0; i < 10; i++) await randomWrite(vol, model, rng, 5000 + i);
    expect(await compare(vol, model)).toBeNull();
    await vol.snapshot('after');
    model.snaps.set('after', model.live.slice());
    await vol.close();
    // The journal still names the interrupted job; a writable open finishes the merge.
    expect((await JobJournal.open(ns)).records().map((r) => r.kind)).toEqual(['consolidate']);
    const again = await Volume.open(ns);
    expect(await compare(again, model)).toBeNull();
    expect((await again.check()).ok).toBe(true);
    await again.close();
  });
});
