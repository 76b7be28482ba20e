import { afterEach, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { mirror, type MirrorJob } from '../../../src/jobs/mirror.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { serveStore } from '../../../src/store/store-server.js';
import type { StoreNamespace } from '../../../src/store/store.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { tempDir } from '../cli/harness.js';
import { JitterNamespace, MemoryNamespace, buildChain, compare, randomWrite, type Model } from './consolidate-helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function dirNs(): { ns: NodeDirNamespace; dir: string } {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return { ns: new NodeDirNamespace(t.dir), dir: t.dir };
}

/** Write to `vol` until the job ends; a write refused because the volume moved goes to the copy. */
async function writeThrough(vol: Volume, job: MirrorJob, model: Model, rng: Rng): Promise<number> {
  let finished = false;
  const end = job.done.finally(() => (finished = true));
  let n = 0;
  while (!finished) {
    try {
      await randomWrite(vol, model, rng, 9000 + n);
    } catch (e) {
      if (!isStrataError(e, 'closed')) throw e;
      break;
    }
    if (++n % 9 === 0) await vol.flush();
    await new Promise((r) => setImmediate(r));
  }
  await end;
  return n;
}

async function scenario(source: StoreNamespace, target: StoreNamespace, flatten: boolean, seed: number) {
  const rng = new Rng(seed);
  const { vol, model } = await buildChain(source, rng);
  const job = mirror(vol, target, { flatten, batchBytes: 3 * 4096 });
  const writes = await writeThrough(vol, job, model, rng);
  expect(writes).toBeGreaterThan(0);
  expect(job.state).toBe('completed');
  const copy = job.target!;
  await expect(vol.write(0, new Uint8Array(10))).rejects.toMatchObject({ code: 'closed' });
  await vol.close();
  // The copy is the live volume now: it reads what the model says and takes writes.
  if (flatten) model.snaps.clear();
  expect(await compare(copy, model)).toBeNull();
  for (let i = 0; i < 5; i++) await randomWrite(copy, model, rng, 9900 + i);
  expect(await compare(copy, model)).toBeNull();
  if (!flatten) expect(copy.info().layers.map((l) => l.contentId).slice(0, 3)).toEqual(copy.info().layers.map((l) => l.contentId).slice(0, 3));
  expect((await copy.check()).ok).toBe(true);
  await copy.close();
  const again = await Volume.open(target, { readOnly: true });
  expect(await compare(again, model)).toBeNull();
  await again.close();
  return model;
}

describe('mirror job', () => {
  for (const flatten of [false, true]) {
    it(`memory -> node-dir (${flatten ? 'flattened' : 'all layers'}) while written, then switches over`, async () => {
      await scenario(new JitterNamespace(new MemoryNamespace(), new Rng(1)), dirNs().ns, flatten, 41);
    });
    it(`node-dir -> node-dir (${flatten ? 'flattened' : 'all layers'}) while written, then switches over`, async () => {
      await scenario(dirNs().ns, dirNs().ns, flatten, 42);
    });
  }

  for (const flatten of [false, true]) {
    it(`node-dir -> store server over HTTP (${flatten ? 'flattened' : 'all layers'}) while written; the server's directory opens as the volume`, async () => {
      const served = dirNs();
      const server = await serveStore(served.dir);
      let model: Model;
      try {
        model = await scenario(dirNs().ns, new RemoteNamespace(`${server.url}vol#token=${server.token}`, { maxRequestBytes: 16 * 1024 }), flatten, 43);
      } finally {
        await server.close();
      }
      const local = await Volume.open(new NodeDirNamespace(`${served.dir}/vol`), { readOnly: true });
      expect((await local.check()).ok).toBe(true);
      expect(await compare(local, model)).toBeNull();
      await local.close();
    });
  }

  it('all layers: snapshots and content IDs are copied exactly', async () => {
    const src = new MemoryNamespace();
    const { vol } = await buildChain(src, new Rng(5));
    const ids = vol.info().layers.filter((l) => l.sealed).map((l) => l.contentId);
    const job = mirror(vol, new MemoryNamespace(), { switchOver: true });
    await job.done;
    expect(job.target!.info().layers.filter((l) => l.sealed).map((l) => l.contentId)).toEqual(ids);
    await job.target!.close();
    await vol.close();
  });

  it('a cancelled mirror leaves no volume at the target and the source in use; without switch-over the source stays live', async () => {
    const src = new MemoryNamespace();
    const { vol, model } = await buildChain(src, new Rng(6));
    const target = new MemoryNamespace();
    const job = mirror(vol, target, { batchBytes: 4096, rateLimit: 4096 * 20 });
    await new Promise((r) => setTimeout(r, 30));
    job.cancel();
    await expect(job.done).rejects.toMatchObject({ code: 'aborted' });
    expect(await target.list()).toEqual([]);
    await randomWrite(vol, model, new Rng(60), 1);
    expect(await compare(vol, model)).toBeNull();
    const copyNs = new MemoryNamespace();
    const pit = mirror(vol, copyNs, { switchOver: false, flatten: true });
    await pit.done;
    expect(pit.target).toBeNull();
    await randomWrite(vol, model, new Rng(61), 2); // the source is still the live volume
    await vol.close();
    await expect(Volume.open(copyNs)).resolves.toBeDefined();
    await expect(mirror(await Volume.open(src), copyNs).done).rejects.toMatchObject({ code: 'exists' });
  });
});
