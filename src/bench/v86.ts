/**
 * v86 in Node with the test guest (.ci/build-guest.sh): boot time to the shell and guest `dd`
 * throughput (64 MiB write with fsync, read after dropping caches) with the disk on a stratadisk
 * volume (memory; a directory) vs v86 on a plain ArrayBuffer disk, in one run. The OPFS figures
 * come from Chromium (test/browser/bench/v86.test.ts, `npm run bench:browser`).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNamespace } from '../store/memory.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { V86Disk } from '../v86/disk-adapter.js';
import { guestOptions, type GuestImages } from '../v86/guest.js';
import { guestMissing, loadGuest, v86WasmPath } from '../v86/guest-node.js';
import type { BenchResult } from './result.js';
import { BENCH_MEMORY, measureGuest, type GuestEmulator, type GuestFigures } from './v86-guest.js';
import { v86Results } from './v86-results.js';

const DISK = 128 * 2 ** 20;

async function boot(images: GuestImages, hda: object, mib: number): Promise<GuestFigures> {
  const { V86 } = (await import('v86')) as unknown as { V86: new (o: unknown) => GuestEmulator };
  const counters = hda instanceof V86Disk ? () => ({ ...hda.stats }) : undefined;
  return measureGuest(new V86(guestOptions(images, { wasmPath: v86WasmPath(), hda, memorySize: BENCH_MEMORY })), mib, undefined, counters);
}

export async function benchV86(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const missing = guestMissing();
  if (missing) return [{ name: 'v86 guest', ours: 0, peer: 0, ratio: Number.NaN, unit: '-', peerName: 'v86 on an ArrayBuffer disk', note: `skipped: ${missing}` }];
  const images = await loadGuest();
  const mib = opts.quick ? 8 : 64;
  const peer = await boot(images, { buffer: new ArrayBuffer(DISK) }, mib);

  const mem = await Volume.create(new MemoryNamespace(), { size: DISK });
  const memDisk = new V86Disk(mem);
  const onMemory = await boot(images, memDisk, mib);
  await memDisk.close();
  await mem.close();

  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-v86-bench-'));
  try {
    const vol = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size: DISK });
    const disk = new V86Disk(vol);
    const onDir = await boot(images, disk, mib);
    await disk.close();
    await vol.close();
    return [...v86Results('a memory volume', onMemory, peer, undefined, mib), ...v86Results('a directory volume (Node)', onDir, peer, undefined, mib)];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
