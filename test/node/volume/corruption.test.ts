import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 4096;
const SIZE = 16 * BS;
const LONG = process.env.STRATADISK_LONG === '1';

interface Committed {
  live: Uint8Array;
  snaps: Map<string, Uint8Array>;
}

/** A small volume with several flushes, snapshots, a revert and a deletion, and every state it committed. */
async function buildVolume(): Promise<{ ns: MemoryNamespace; history: Committed[] }> {
  const ns = new MemoryNamespace();
  const vol = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const rng = new Rng(99);
  const live = new Uint8Array(SIZE);
  const snaps = new Map<string, Uint8Array>();
  const history: Committed[] = [{ live: live.slice(), snaps: new Map() }];
  const commit = () => history.push({ live: live.slice(), snaps: new Map(snaps) });
  const write = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const len = rng.range(1, 3 * BS);
      const off = rng.int(SIZE - len);
      const d = rng.bytes(len);
      await vol.write(off, d);
      live.set(d, off);
    }
  };
  for (let round = 0; round < 4; round++) {
    await write(5);
    await vol.flush();
    commit();
    await write(3);
    await vol.snapshot(`s${round}`);
    snaps.set(`s${round}`, live.slice());
    commit();
  }
  await vol.deleteSnapshot('s1');
  snaps.delete('s1');
  commit();
  await vol.revert('s2');
  live.set(snaps.get('s2')!);
  commit();
  await write(4);
  await vol.flush();
  commit();
  await vol.close();
  return { ns, history };
}

function cloneNs(ns: MemoryNamespace): MemoryNamespace {
  const out = new MemoryNamespace();
  for (const [name, b] of ns.files) out.files.set(name, new MemoryBacking(b.contents()));
  return out;
}

/** Open after damage: either an error with a code, or a state the volume really had. */
async function judge(ns: MemoryNamespace, history: Committed[]): Promise<string | null> {
  let vol: Volume;
  try {
    vol = await Volume.open(ns, { readOnly: true });
  } catch (e) {
    return isStrataError(e) ? null : `open threw a non-StrataError: ${String(e)}`;
  }
  try {
    const live = await vol.read(0, SIZE);
    if (!history.some((h) => equalBytes(h.live, live))) return 'opened with a live view the volume never had';
    for (const s of vol.snapshots()) {
      const want = history.map((h) => h.snaps.get(s.name)).find((x) => x !== undefined);
      if (!want) return `snapshot ${s.name} never existed`;
      if (!equalBytes(want, await vol.openSnapshot(s.name).read(0, SIZE))) return `snapshot ${s.name} has content it never had`;
    }
    return null;
  } catch (e) {
    return isStrataError(e) ? null : `read threw a non-StrataError: ${String(e)}`;
  } finally {
    await vol.close().catch(() => undefined);
  }
}

describe('corrupting metadata', () => {
  it('every single-byte corruption of every metadata file gives an error with a code or a state the volume had', async () => {
    const { ns, history } = await buildVolume();
    const metadata = [...ns.files.keys()].filter((n) => n.startsWith('manifest') || n.endsWith('.map'));
    expect(metadata.length).toBeGreaterThanOrEqual(4);
    const rng = new Rng(5);
    const failures: string[] = [];
    let trials = 0;
    const rssBefore = process.memoryUsage().rss;
    for (const name of metadata) {
      const size = ns.files.get(name)!.length;
      for (let at = 0; at < size; at++) {
        const damaged = cloneNs(ns);
        const b = damaged.files.get(name)!;
        b.buf[at] ^= LONG ? 1 << rng.int(8) : [0xff, 0x01, 0x80][at % 3]!;
        const problem = await judge(damaged, history);
        trials++;
        if (problem) failures.push(`${name} byte ${at}: ${problem}`);
        if (failures.length > 5) break;
      }
    }
    expect(failures).toEqual([]);
    expect(trials).toBeGreaterThan(1000);
    // Nothing sized an allocation from a damaged length field.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(512 * 2 ** 20);
  });

  it('truncating a metadata file anywhere gives an error with a code or a state the volume had', async () => {
    const { ns, history } = await buildVolume();
    const failures: string[] = [];
    for (const name of [...ns.files.keys()].filter((n) => n.startsWith('manifest') || n.endsWith('.map'))) {
      const size = ns.files.get(name)!.length;
      for (let cut = 0; cut < size; cut += LONG ? 1 : 7) {
        const damaged = cloneNs(ns);
        damaged.files.get(name)!.length = cut;
        const problem = await judge(damaged, history);
        if (problem) failures.push(`${name} cut at ${cut}: ${problem}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('damaged length fields claiming huge records are refused without allocating them', async () => {
    const { ns, history } = await buildVolume();
    for (const name of [...ns.files.keys()].filter((n) => n.startsWith('manifest') || n.endsWith('.map'))) {
      const damaged = cloneNs(ns);
      const b = damaged.files.get(name)!;
      new DataView(b.buf.buffer).setUint32(16, 0xfffffff0, true);
      expect(await judge(damaged, history)).toBeNull();
    }
  });

  it('flipped data bytes are found by check as a checksum mismatch', async () => {
    const { ns } = await buildVolume();
    const dataFiles = [...ns.files.keys()].filter((n) => n.endsWith('.data') && ns.files.get(n)!.length > 0);
    expect(dataFiles.length).toBeGreaterThan(0);
    for (const name of dataFiles) {
      const damaged = cloneNs(ns);
      const b = damaged.files.get(name)!;
      // one flipped byte in every slot, so referenced slots are surely hit
      for (let at = BS / 2; at < b.length; at += BS) b.buf[at] ^= 0x40;
      const vol = await Volume.open(damaged, { readOnly: true });
      const report = await vol.check();
      await vol.close();
      expect(report.ok).toBe(false);
      expect(report.problems.some((p) => p.code === 'checksum-mismatch')).toBe(true);
    }
  });
});

describe('fuzzing the metadata parsers', () => {
  it('random bytes and random record-shaped garbage never crash, hang or open as a state the volume never had', async () => {
    const { ns, history } = await buildVolume();
    const names = [...ns.files.keys()].filter((n) => n.startsWith('manifest') || n.endsWith('.map'));
    const rng = new Rng(2024);
    const cases = LONG ? 100_000 : 600;
    const failures: string[] = [];
    for (let c = 0; c < cases && failures.length < 5; c++) {
      const damaged = cloneNs(ns);
      const name = rng.pick(names);
      const b = damaged.files.get(name)!;
      const kind = rng.int(3);
      if (kind === 0) {
        // wholly random content of a random length
        const fresh = rng.bytes(rng.int(4096));
        damaged.files.set(name, new MemoryBacking(fresh));
      } else if (kind === 1) {
        // a burst of random bytes somewhere inside
        const at = rng.int(Math.max(1, b.length));
        const n = Math.min(b.length - at, rng.range(1, 64));
        for (let i = 0; i < n; i++) b.buf[at + i] = rng.int(256);
      } else {
        // random garbage appended after the valid records
        const tail = rng.bytes(rng.range(1, 300));
        const grown = new Uint8Array(b.length + tail.length);
        grown.set(b.contents());
        grown.set(tail, b.length);
        damaged.files.set(name, new MemoryBacking(grown));
      }
      const problem = await judge(damaged, history);
      if (problem) failures.push(`case ${c} (${name}, kind ${kind}): ${problem}`);
    }
    expect(failures).toEqual([]);
  }, LONG ? 3_600_000 : 120_000);
});
