import { afterEach, describe, expect, it } from 'vitest';
import { serveNbd } from '../../../src/interop/nbd/index.js';
import { consolidate } from '../../../src/jobs/consolidate.js';
import { serveControl } from '../../../src/jobs/control.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { cli, ok, tempDir } from '../cli/harness.js';
import { BS, SIZE, buildChain, compare, randomWrite, same } from './consolidate-helpers.js';

let cleanup: (() => void) | undefined;
const cleanups: (() => void)[] = [];
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  for (const c of cleanups.splice(0)) c();
});

async function volumeDir(seed: number) {
  const t = tempDir();
  cleanup = t.cleanup;
  const { vol, model } = await buildChain(new NodeDirNamespace(t.dir), new Rng(seed));
  await vol.close();
  return { dir: t.dir, model };
}

describe('CLI: commit, delete-snapshot, jobs', () => {
  it('commit refuses without --drop-snapshot, then commits; delete-snapshot offline', async () => {
    const { dir, model } = await volumeDir(1);
    const r = await cli(['commit', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--drop-snapshot/);
    expect(await ok(['commit', dir, '--drop-snapshot'])).toMatch(/Committed the active layer/);
    model.snaps.delete('s2');
    expect(await ok(['delete-snapshot', dir, 's0', '--direction', 'up'])).toMatch(/Deleted snapshot s0/);
    model.snaps.delete('s0');
    const v = await Volume.open(new NodeDirNamespace(dir), { readOnly: true });
    expect(await compare(v, model)).toBeNull();
    expect(v.info().layers.length).toBe(2);
    await v.close();
    expect(await ok(['jobs', dir])).toMatch(/No jobs/);
  });

  it('delete-snapshot and commit run online in the process serving the volume, while it is written', async () => {
    const { dir, model } = await volumeDir(2);
    const server = await serveNbd({ dir }, { port: 0, insecure: true });
    const control = await serveControl(server.volume, dir);
    try {
      const vol = server.volume;
      const rng = new Rng(20);
      let stop = false;
      let writes = 0;
      const writer = (async () => {
        while (!stop) {
          await randomWrite(vol, model, rng, 3000 + writes++);
          await new Promise((r) => setImmediate(r));
        }
      })();
      const out = await ok(['delete-snapshot', dir, 's1']);
      expect(out).toMatch(/online/);
      model.snaps.delete('s1');
      expect(await ok(['jobs', dir])).toMatch(/No jobs/);
      const c = await ok(['commit', dir, '--drop-snapshot']);
      expect(c).toMatch(/online/);
      model.snaps.delete('s2');
      stop = true;
      await writer;
      expect(writes).toBeGreaterThan(0);
      expect(await compare(vol, model)).toBeNull();
      expect(vol.layerChain().length).toBe(2);
    } finally {
      await control.close();
      await server.close();
    }
    const v = await Volume.open(new NodeDirNamespace(dir), { readOnly: true });
    expect(await compare(v, model)).toBeNull();
    await v.close();
  });

  it('jobs lists an interrupted consolidation and --resume finishes it', async () => {
    const { dir, model } = await volumeDir(3);
    const vol = await Volume.open(new NodeDirNamespace(dir));
    const job = consolidate(vol, { op: 'delete-snapshot', name: 's1' }, { batchBytes: BS, rateLimit: BS * 4 });
    model.snaps.delete('s1');
    await new Promise((r) => setTimeout(r, 30));
    job.cancel();
    await job.done.catch(() => {});
    await vol.close();
    const listed = JSON.parse(await ok(['jobs', dir, '--json'])) as { kind: string; state: string }[];
    expect(listed.map((r) => [r.kind, r.state])).toEqual([['consolidate', 'interrupted']]);
    expect(await ok(['jobs', dir, '--resume'])).toMatch(/Finished 1 interrupted/);
    expect(await ok(['jobs', dir])).toMatch(/No jobs/);
    const v = await Volume.open(new NodeDirNamespace(dir), { readOnly: true });
    expect(await compare(v, model)).toBeNull();
    expect(v.info().layers.length).toBe(3);
    expect(v.size).toBe(SIZE);
    await v.close();
  });

  it('mirror copies a volume offline (all layers, or flattened) and online from the serving process', async () => {
    const { dir, model } = await volumeDir(4);
    const t = tempDir();
    cleanups.push(t.cleanup);
    expect(await ok(['mirror', dir, `${t.dir}/all`])).toMatch(/bytes copied/);
    expect(await ok(['mirror', dir, `${t.dir}/flat`, '--flatten'])).toMatch(/flattened/);
    const all = await Volume.open(new NodeDirNamespace(`${t.dir}/all`), { readOnly: true });
    expect(await compare(all, model)).toBeNull();
    await all.close();
    const flat = await Volume.open(new NodeDirNamespace(`${t.dir}/flat`), { readOnly: true });
    expect(await compare(flat, { live: model.live, snaps: new Map() })).toBeNull();
    await flat.close();
    expect((await cli(['mirror', dir, `${t.dir}/all`])).stderr).toMatch(/not empty/);

    const server = await serveNbd({ dir }, { port: 0, insecure: true });
    const control = await serveControl(server.volume, dir);
    try {
      const rng = new Rng(44);
      let stop = false;
      const writer = (async () => {
        for (let n = 0; !stop; n++) {
          await randomWrite(server.volume, model, rng, 4000 + n);
          await new Promise((r) => setImmediate(r));
        }
      })();
    expect(await ok(['mirror', dir, `${t.dir}/online`])).toMatch(/online/);
      stop = true;
      await writer;
    } finally {
      await control.close();
      await server.close();
    }
    // the online copy is the source as of the job's end; the source took more writes after
    const copy = await Volume.open(new NodeDirNamespace(`${t.dir}/online`), { readOnly: true });
    expect(copy.snapshots().map((s) => s.name)).toEqual(['s0', 's1', 's2']);
    for (const n of ['s0', 's1', 's2']) expect(same(await copy.openSnapshot(n).read(0, SIZE), model.snaps.get(n)!)).toBe(true);
    expect((await copy.check()).ok).toBe(true);
    await copy.close();
  });
});
