import { describe, expect, it } from 'vitest';
import { startImageServer } from '../../../src/bench/image-server.js';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';
import { Salvage, type SalvageViewResult } from '../../../src/volume/salvage.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 4096;
const SIZE = 16 * BS;

interface State {
  live: Uint8Array;
  snaps: Map<string, Uint8Array>;
}

/** A volume with flushes, snapshots, a deletion and a revert, and every state it committed. */
async function buildVolume(): Promise<{ ns: MemoryNamespace; history: State[] }> {
  const ns = new MemoryNamespace();
  const vol = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const rng = new Rng(41);
  const live = new Uint8Array(SIZE);
  const snaps = new Map<string, Uint8Array>();
  const history: State[] = [{ live: live.slice(), snaps: new Map() }];
  const commit = () => history.push({ live: live.slice(), snaps: new Map(snaps) });
  const write = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const len = rng.range(1, 3 * BS);
      const off = rng.int(SIZE - len);
      const d = rng.bytes(len);
      await vol.write(off, d);
      live.set(d, off);
      await vol.flush();
      commit();
    }
  };
  for (const name of ['s0', 's1', 's2', 's3']) {
    await write(3);
    await vol.snapshot(name);
    snaps.set(name, live.slice());
    commit();
  }
  await vol.deleteSnapshot('s1');
  snaps.delete('s1');
  commit();
  await vol.revert('s2');
  live.set(snaps.get('s2')!);
  commit();
  await write(3);
  await vol.close();
  return { ns, history };
}

function cloneNs(ns: MemoryNamespace): MemoryNamespace {
  const out = new MemoryNamespace();
  for (const [name, b] of ns.files) out.files.set(name, new MemoryBacking(b.contents()));
  return out;
}

/** Salvage every view into memory. */
async function salvageAll(ns: MemoryNamespace): Promise<{ s: Salvage; images: { kind: string; name: string; bytes: Uint8Array; result: SalvageViewResult }[] }> {
  const s = await Salvage.open(ns);
  const images = [];
  try {
    for (const view of s.views) {
      const bytes = new Uint8Array(view.size);
      let last = -1;
      const result = await s.exportView(view, async (offset, data) => {
        // writes come in ascending order and never overlap
        expect(offset).toBeGreaterThan(last);
        last = offset + data.length - 1;
        bytes.set(data, offset);
      });
      images.push({ kind: view.kind, name: view.name, bytes, result });
    }
  } finally {
    await s.close();
  }
  return { s, images };
}

/**
 * An image salvage reports as wholly readable and certain must be a state the view really had.
 * Returns a description of the first violation, or null.
 */
async function judge(ns: MemoryNamespace, history: State[]): Promise<string | null> {
  const { images } = await salvageAll(ns);
  for (const img of images) {
    if (img.result.zeroed.length > 0 || img.result.uncertain.length > 0) continue;
    if (img.kind === 'live' && !history.some((h) => equalBytes(h.live, img.bytes))) return 'a clean live image the volume never had';
    if (img.kind === 'snapshot') {
      const want = history.map((h) => h.snaps.get(img.name)).find((x) => x !== undefined);
      if (!want) return `snapshot ${img.name} never existed`;
      if (!equalBytes(want, img.bytes)) return `a clean snapshot ${img.name} with content it never had`;
    }
  }
  return null;
}

describe('salvage (engine)', () => {
  it('a healthy volume: every view exactly, nothing reported', async () => {
    const { ns, history } = await buildVolume();
    const { s, images } = await salvageAll(ns);
    const last = history[history.length - 1]!;
    expect(images.map((i) => `${i.kind}:${i.name}`)).toEqual(['snapshot:s0', 'snapshot:s2', 'snapshot:s3', 'live:live']);
    for (const img of images) {
      expect(img.result).toMatchObject({ zeroed: [], uncertain: [] });
      expect(equalBytes(img.bytes, img.kind === 'live' ? last.live : last.snaps.get(img.name)!)).toBe(true);
    }
    expect(s.survey.newerState).toEqual([]);
    expect(s.survey.layers.every((l) => l.problems.length === 0)).toBe(true);
  });

  it('a volume on a remote image: local blocks exactly; blocks still on the server listed, never guessed', async () => {
    const bs = 16 * 1024;
    const size = 20 * bs + 100; // a partial last block
    const img = new Rng(3).bytes(size);
    const srv = await startImageServer(img);
    try {
      const ns = new MemoryNamespace();
      const v = await Volume.createFromImage(ns, srv.url, { blockSize: bs, remote: { backoffMs: 1, cacheFlushMs: 10, maxReadAhead: 0 } });
      await v.read(2 * bs, 3 * bs); // blocks 2..4 fetched into the cache
      await v.write(10 * bs, new Uint8Array(bs).fill(7)); // block 10 written locally
      await v.close();
      const ro = await Volume.open(ns, { readOnly: true, remote: { maxReadAhead: 0 } });
      expect(ro.info().remote!.localBytes).toBe(4 * bs);
      const live = await ro.read(0, size);
      await ro.close();
      const { images } = await salvageAll(ns);
      const l = images.find((i) => i.kind === 'live')!;
      expect(l.result.uncertain).toEqual([]);
      const reason = `held by the remote image ${srv.url}, which salvage does not fetch`;
      expect(l.result.zeroed).toEqual([
        { offset: 0, length: 2 * bs, layer: 'remote image', reason },
        { offset: 5 * bs, length: 5 * bs, layer: 'remote image', reason },
        { offset: 11 * bs, length: size - 11 * bs, layer: 'remote image', reason },
      ]);
      expect(equalBytes(l.bytes.subarray(2 * bs, 5 * bs), live.subarray(2 * bs, 5 * bs))).toBe(true);
      expect(equalBytes(l.bytes.subarray(10 * bs, 11 * bs), live.subarray(10 * bs, 11 * bs))).toBe(true);
    } finally {
      await srv.close();
    }
  });

  it('never throws, and never calls an image clean unless the view had it: every file deleted, metadata cut and flipped', async () => {
    const { ns, history } = await buildVolume();
    const failures: string[] = [];
    const cases: [string, (d: MemoryNamespace) => void][] = [];
    for (const name of ns.files.keys()) {
      cases.push([`delete ${name}`, (d) => d.files.delete(name)]);
      const size = ns.files.get(name)!.length;
      if (name.endsWith('.data')) {
        cases.push([`cut ${name} in half`, (d) => (d.files.get(name)!.length = Math.floor(size / 2))]);
        cases.push([`flip in ${name}`, (d) => (d.files.get(name)!.buf[Math.floor(size / 3)] ^= 0x10)]);
        continue;
      }
      for (let at = 0; at < size; at += 5) {
        cases.push([`cut ${name} at ${at}`, (d) => (d.files.get(name)!.length = at)]);
        cases.push([`flip ${name} byte ${at}`, (d) => (d.files.get(name)!.buf[at] ^= 0x80)]);
      }
    }
    expect(cases.length).toBeGreaterThan(300);
    for (const [what, damage] of cases) {
      const d = cloneNs(ns);
      damage(d);
      try {
        const problem = await judge(d, history);
        if (problem) failures.push(`${what}: ${problem}`);
      } catch (e) {
        failures.push(`${what}: threw ${String(e)}`);
      }
      if (failures.length > 5) break;
    }
    expect(failures).toEqual([]);
  }, 300_000);
});
