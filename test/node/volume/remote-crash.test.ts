/**
 * Crash safety of copy-on-read: a workload of reads (fetching into the cache layer), writes,
 * flushes and stream batches on a fault-injecting store, crashed at every store write. After
 * reopening, the live volume is the last flushed state or the in-flight one (modified blocks are
 * never lost), every cache entry holds the image's bytes (an entry is durable only after its
 * data), and `check` is clean. Lost cache entries are fine: they are fetched again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startImageServer, type ImageServer } from '../../../src/bench/image-server.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng, equalBytes, firstDiff } from '../helpers/random.js';

const LONG = process.env.STRATADISK_LONG === '1';
const KiB = 1024;
const BS = 4 * KiB;
const BLOCKS = 48;
const IMG = new Rng(42).bytes(BLOCKS * BS - 700);
IMG.fill(0, 10 * BS, 12 * BS);
const remote = { backoffMs: 1, cacheFlushMs: 1e9 }; // only explicit flushes make the cache durable
let srv: ImageServer;
beforeAll(async () => {
  srv = await startImageServer(IMG);
});
afterAll(async () => {
  await srv.close();
});

interface Outcome {
  crashed: boolean;
  durable: Uint8Array;
  inflight: Uint8Array;
}

async function workload(ns: MemoryNamespace, ctl: FaultController, seed: number, steps: number): Promise<Outcome> {
  const durable = IMG.slice();
  let inflight = durable.slice();
  let v: Volume | undefined;
  try {
    v = await Volume.open(new FaultNamespace(ns, ctl), { remote });
    const rng = new Rng(seed);
    for (let i = 0; i < steps; i++) {
      const r = rng.next();
      if (r < 0.45) {
        const off = rng.int(IMG.length - 1);
        const len = rng.range(1, Math.min(6 * BS, IMG.length - off));
        const got = await v.read(off, len);
        if (!equalBytes(got, inflight.subarray(off, off + len))) throw new Error(`step ${i}: read mismatch`);
      } else if (r < 0.8) {
        const off = rng.int(IMG.length - 1);
        const len = rng.range(1, Math.min(3 * BS, IMG.length - off));
        const data = rng.next() < 0.2 ? new Uint8Array(len) : rng.bytes(len);
        inflight = durable.slice();
        inflight.set(data, off);
        await v.write(off, data);
        await v.flush();
        durable.set(data, off);
      } else if (r < 0.9) {
        await v.remote!.fetchBlocks(rng.int(BLOCKS), 8);
      } else {
        await v.flush();
      }
    }
    await v.close();
    return { crashed: false, durable, inflight: durable };
  } catch (e) {
    if (!ctl.crashed) throw e;
    return { crashed: true, durable, inflight };
  }
}

async function verify(ns: MemoryNamespace, o: Outcome): Promise<string | null> {
  const v = await Volume.open(ns, { remote });
  try {
    const got = await v.read(0, IMG.length);
    if (!equalBytes(got, o.durable) && !equalBytes(got, o.inflight)) return `live volume differs from both states at byte ${firstDiff(got, o.durable)}`;
    const cacheId = v.manifest.remote!.cache;
    const cache = v.openLayer(cacheId);
    const layer = v.layerChain().at(-1)!;
    if (layer !== cacheId) return 'the cache layer is not the root of the chain';
    const bytes = await cache.read(0, IMG.length);
    const padded = new Uint8Array(BLOCKS * BS);
    padded.set(IMG);
    for (const e of await cache.map()) {
      if (!e.present) continue;
      const want = padded.subarray(e.start, e.start + e.length);
      if (!equalBytes(bytes.subarray(e.start, Math.min(IMG.length, e.start + e.length)), want.subarray(0, Math.min(IMG.length, e.start + e.length) - e.start))) return `cache entry at ${e.start} does not hold the image's bytes`;
    }
    const report = await v.check();
    if (!report.ok) return `check: ${JSON.stringify(report).slice(0, 300)}`;
    return null;
  } finally {
    await v.close();
  }
}

const MODES: [CrashMode, TearMode][] = [
  ['drop-unflushed', 'prefix'],
  ['random', 'sectors'],
  ['keep-unflushed', 'sectors'],
];

async function freshVolume(): Promise<MemoryNamespace> {
  const ns = new MemoryNamespace();
  await (await Volume.createFromImage(ns, srv.url, { blockSize: BS, remote })).close();
  return ns;
}

describe('copy-on-read crash safety', () => {
  for (const seed of LONG ? [1, 2, 3, 4, 5, 6] : [1]) {
    it(`seed ${seed}: crash at every store write of a fetch/write/flush/stream workload`, async () => {
      const steps = LONG ? 120 : 40;
      const probe = new FaultController({});
      const clean = await workload(await freshVolume(), probe, seed, steps);
      expect(clean.crashed).toBe(false);
      const total = probe.writes;
      expect(total).toBeGreaterThan(20);
      const failures: string[] = [];
      // Every crash point in the long run; every third (all tear/crash modes still covered) by default.
      for (let k = seed % 3; k < total; k += LONG ? 1 : 3) {
        const [mode, tear] = MODES[Math.floor(k / 3) % MODES.length]!;
        const ns = await freshVolume();
        const ctl = new FaultController({ crashAt: k, tear, seed: seed * 7919 + k, sectorSize: 512 });
        const o = await workload(ns, ctl, seed, steps);
        expect(o.crashed).toBe(true);
        await ctl.crash(mode);
        let problem: string | null;
        try {
          problem = await verify(ns, o);
        } catch (e) {
          problem = `reopen threw ${String(e)}`;
        }
        if (problem) failures.push(`crash at write ${k}/${total} (${mode}, ${tear}): ${problem}`);
        if (failures.length >= 5) break;
      }
      expect(failures).toEqual([]);
    });
  }
});
