/**
 * A Volume smoke run on any namespace: create, write, snapshot, overwrite, read back both the
 * live volume and the snapshot, close, reopen, read again. Plain checks (no vitest), so it runs
 * on the page and inside the OPFS worker alike; it throws on the first mismatch.
 */
import type { StoreNamespace } from '../../../src/store/store.js';
import { Volume } from '../../../src/volume/volume.js';

function fill(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function same(a: Uint8Array, b: Uint8Array, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: length ${a.length}, expected ${b.length}`);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) throw new Error(`${what}: first difference at byte ${i}`);
}

export interface SmokeReport {
  snapshots: string[];
  size: number;
  checkProblems: number;
}

export async function volumeSmoke(open: () => Promise<StoreNamespace>): Promise<SmokeReport> {
  const blockSize = 16_384;
  const size = 8 * 2 ** 20;
  const first = fill(100_000, 1);
  const second = fill(50_000, 2);
  let v = await Volume.create(await open(), { size, blockSize });
  try {
    await v.write(10_000, first);
    await v.flush();
    await v.snapshot('s1');
    await v.write(30_000, second);
    await v.write(size - blockSize, fill(blockSize, 3));
    await v.flush();
    const expected = first.slice();
    expected.set(second, 20_000);
    same(await v.read(10_000, first.length), expected, 'live volume');
    same(await v.openSnapshot('s1').read(10_000, first.length), first, 'snapshot s1');
  } finally {
    await v.close();
  }
  v = await Volume.open(await open());
  try {
    const expected = first.slice();
    expected.set(second, 20_000);
    same(await v.read(10_000, first.length), expected, 'live volume after reopen');
    same(await v.openSnapshot('s1').read(10_000, first.length), first, 'snapshot s1 after reopen');
    same(await v.read(size - blockSize, blockSize), fill(blockSize, 3), 'last block after reopen');
    const zeros = await v.read(200_000, 65_536);
    if (zeros.some((b) => b !== 0)) throw new Error('unwritten range is not zeros');
    const report = await v.check();
    return { snapshots: v.snapshots().map((s) => s.name), size: v.size, checkProblems: report.problems.length };
  } finally {
    await v.close();
  }
}
