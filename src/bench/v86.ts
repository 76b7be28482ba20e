/**
 * v86 in Node with the test guest (.ci/build-guest.sh): boot time to the shell and guest `dd`
 * throughput (64 MiB write with fsync, read after dropping caches) with the disk on a stratadisk
 * volume (memory; a directory) vs v86 on a plain ArrayBuffer disk, in one run; on the stratadisk
 * disks the guest flush barrier is on, and what a `sync` costs with it (v86-sync.ts) is measured
 * in the same guest. The OPFS figures come from Chromium (test/browser/bench/v86.test.ts,
 * `npm run bench:browser`). `benchV86Sync` boots once, on a directory volume, for the sync figures only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryNamespace } from '../store/memory.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { V86Disk } from '../v86/disk-adapter.js';
import { guestOptions, type GuestImages } from '../v86/guest.js';
import { installFlushBarrier } from '../v86/flush-barrier.js';
import { guestMissing, loadGuest, v86Version, v86WasmPath } from '../v86/guest-node.js';
import type { BenchResult } from './result.js';
import { BENCH_MEMORY, measureGuest, type GuestEmulator, type GuestFigures } from './v86-guest.js';
import { v86Results } from './v86-results.js';
import { measureSync, syncResults, type SyncFigures } from './v86-sync.js';

const DISK = 128 * 2 ** 20;

/** Boot, dd pair; on a V86Disk with the flush barrier, and (with `sync`) the sync figures too. */
async function boot(images: GuestImages, hda: object, mib: number, sync?: (f: SyncFigures) => void): Promise<GuestFigures> {
  const { V86 } = (await import('v86')) as unknown as { V86: new (o: unknown) => GuestEmulator };
  const emulator = new V86(guestOptions(images, { wasmPath: v86WasmPath(), hda, memorySize: BENCH_MEMORY }));
  if (!(hda instanceof V86Disk)) return measureGuest(emulator, mib);
  const barrier = await installFlushBarrier(emulator, hda, { v86Version: v86Version() });
  return measureGuest(emulator, mib, undefined, () => ({ ...hda.stats }), sync && (async (con) => sync(await measureSync(con, barrier, { counters: () => hda.stats }))));
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
    let sync: SyncFigures | undefined;
    const onDir = await boot(images, disk, mib, (f) => (sync = f));
    await disk.close();
    await vol.close();
    return [
      ...v86Results('a memory volume', onMemory, peer, undefined, mib),
      ...v86Results('a directory volume (Node)', onDir, peer, undefined, mib),
      ...(sync ? syncResults('a directory volume (Node)', sync) : []),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Only the sync figures: one boot on a directory volume (group `v86-sync`). */
export async function benchV86Sync(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const missing = guestMissing();
  if (missing) return [{ name: 'v86 guest sync', ours: 0, peer: 0, ratio: Number.NaN, unit: '-', peerName: 'plain v86', note: `skipped: ${missing}` }];
  const images = await loadGuest();
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-v86-sync-bench-'));
  try {
    const vol = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size: DISK });
    const disk = new V86Disk(vol);
    let sync: SyncFigures | undefined;
    await boot(images, disk, opts.quick ? 8 : 16, (f) => (sync = f));
    await disk.close();
    await vol.close();
    return sync ? syncResults('a directory volume (Node)', sync) : [];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
