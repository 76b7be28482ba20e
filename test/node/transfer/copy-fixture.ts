/** A 4-layer chain (base <- s1 <- s2 <- live) and what a user sees of a volume, for the copy tests. */
import { createHash } from 'node:crypto';
import type { StoreNamespace } from '../../../src/store/store.js';
import { Volume } from '../../../src/volume/volume.js';

export const BS = 4096;
export const SIZE = 64 * BS;

export const fill = (n: number, b: number) => new Uint8Array(n).fill(b);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Blocks: base 0-15 (a), s1 16-19 and a zeroed 2, s2 20-23, live 24-27 and a partial write at 30. */
export async function fourLayers(ns: StoreNamespace, a = 0xa1): Promise<void> {
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, fill(16 * BS, a));
  await v.snapshot('base');
  await v.write(16 * BS, fill(4 * BS, 0xb1));
  await v.writeZeroes(2 * BS, BS);
  await v.snapshot('s1');
  await v.write(20 * BS, fill(4 * BS, 0xc1));
  await v.snapshot('s2');
  await v.write(24 * BS, fill(4 * BS, 0xd1));
  await v.write(30 * BS + 100, fill(50, 0xd2));
  await v.close();
}

/** Only the base of {@link fourLayers}: snapshot `base` and an empty live layer. */
export async function baseOnly(ns: StoreNamespace, a = 0xa1, name = 'base'): Promise<void> {
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, fill(16 * BS, a));
  await v.snapshot(name);
  await v.close();
}

export interface View {
  snapshots: Record<string, string>;
  live: string;
}

/** Each snapshot's content and the live view, through a read-only open. */
export async function view(ns: StoreNamespace): Promise<View> {
  const v = await Volume.open(ns, { readOnly: true });
  try {
    const snapshots: Record<string, string> = {};
    for (const s of v.snapshots()) snapshots[s.name] = sha(await v.openSnapshot(s.name).read(0, v.size));
    return { snapshots, live: sha(await v.read(0, v.size)) };
  } finally {
    await v.close();
  }
}
