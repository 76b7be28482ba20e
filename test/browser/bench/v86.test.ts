/**
 * v86 in Chromium with the test guest: boot time to the shell and guest dd throughput with the
 * disk on a stratadisk volume in the worker (memory, OPFS) and on the page (memory, no worker)
 * vs v86 on a plain ArrayBuffer disk, same page, same run; and what a guest's `sync` costs with
 * the flush barrier on vs off (one boot on OPFS). Boots a real Linux four times (minutes on a shared VM), so it runs only
 * in `npm run bench:browser`; `npm test` covers the same path functionally in test/e2e/vm.test.ts.
 */
import { expect, it } from 'vitest';
import { V86 } from 'v86';
import v86WasmUrl from 'v86/build/v86.wasm?url';
import v86PackageJson from 'v86/package.json?raw';
import { StrataClient } from '../../../src/worker/client.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { V86Disk } from '../../../src/v86/disk-adapter.js';
import { installFlushBarrier } from '../../../src/v86/flush-barrier.js';
import { fetchGuest, guestOptions, type GuestImages } from '../../../src/v86/guest.js';
import { BENCH_MEMORY, measureGuest, type GuestEmulator, type GuestFigures } from '../../../src/bench/v86-guest.js';
import { v86Results } from '../../../src/bench/v86-results.js';
import { measureSync, syncResults, type SyncFigures } from '../../../src/bench/v86-sync.js';

const full = (import.meta as unknown as { env: Record<string, string | undefined> }).env.VITE_STRATADISK_BENCH === '1';
const DISK = 128 * 2 ** 20;

async function loadImages(): Promise<GuestImages | undefined> {
  return fetchGuest('/vm-guest/').catch(() => undefined);
}

it.skipIf(!full)('v86 guest: boot and dd on stratadisk (memory, OPFS) vs an ArrayBuffer disk (npm run bench:browser only)', async () => {
  const images = await loadImages();
  if (!images) {
    console.log(JSON.stringify({ name: 'v86 guest', note: 'skipped: build/guest is missing; run bash .ci/build-guest.sh as root' }));
    return;
  }
  const boot = (hda: object): Promise<GuestFigures> =>
    measureGuest(new V86(guestOptions(images, { wasmPath: v86WasmUrl, hda, memorySize: BENCH_MEMORY }) as never) as unknown as GuestEmulator, 64, undefined, hda instanceof V86Disk ? () => ({ ...hda.stats }) : undefined);
  // Where the time goes: the adapter's counters over each dd phase (round trips, bytes, guest wait).
  const detail = (label: string, f: GuestFigures) => console.log(JSON.stringify({ name: `v86 adapter counters, disk on ${label}`, writeMs: f.writeMs, readMs: f.readMs, writePhase: f.writePhase, readPhase: f.readPhase, crossOriginIsolated: globalThis.crossOriginIsolated }));
  const peer = await boot({ buffer: new ArrayBuffer(DISK) });

  const worker = new Worker(new URL('../../../src/worker/entry.ts', import.meta.url), { type: 'module' });
  const client = StrataClient.connect(worker);
  try {
    const mem = await client.createVolume({ backend: 'memory', path: 'v86-bench' }, { size: DISK });
    const memDisk = new V86Disk(mem);
    const onMemory = await boot(memDisk);
    await memDisk.close();
    await mem.close();

    await client.deleteVolume({ backend: 'opfs', path: 'v86-bench' }).catch(() => {});
    const opfs = await client.createVolume({ backend: 'opfs', path: 'v86-bench' }, { size: DISK });
    const opfsDisk = new V86Disk(opfs);
    const onOpfs = await boot(opfsDisk);
    await opfsDisk.close();
    await opfs.close();
    await client.deleteVolume({ backend: 'opfs', path: 'v86-bench' });

    // The same memory volume on the page, no worker: separates the adapter's own cost from the
    // page <-> worker round trips.
    const local = await Volume.create(new MemoryNamespace(), { size: DISK });
    const localDisk = new V86Disk(local);
    const onPage = await boot(localDisk);
    await localDisk.close();
    await local.close();

    detail('a memory volume (on the page, no worker)', onPage);
    detail('a memory volume (worker)', onMemory);
    detail('an OPFS volume (worker)', onOpfs);
    const results = [
      ...v86Results('a memory volume (on the page)', onPage, peer),
      ...v86Results('a memory volume (worker)', onMemory, peer),
      ...v86Results('an OPFS volume (worker)', onOpfs, peer, 0.8),
    ];
    for (const r of results) console.log(JSON.stringify({ ...r, platform: 'chromium' }));
    for (const r of results) expect(Number.isFinite(r.ours) && r.ours > 0, r.name).toBe(true);
  } finally {
    await client.close();
    worker.terminate();
  }
}, 3_600_000);

it.skipIf(!full)('v86 guest: what a sync costs with the flush barrier, disk on OPFS (npm run bench:browser only)', async () => {
  const images = await loadImages();
  if (!images) {
    console.log(JSON.stringify({ name: 'v86 guest sync', note: 'skipped: build/guest is missing; run bash .ci/build-guest.sh as root' }));
    return;
  }
  const worker = new Worker(new URL('../../../src/worker/entry.ts', import.meta.url), { type: 'module' });
  const client = StrataClient.connect(worker);
  try {
    await client.deleteVolume({ backend: 'opfs', path: 'v86-sync-bench' }).catch(() => {});
    const opfs = await client.createVolume({ backend: 'opfs', path: 'v86-sync-bench' }, { size: DISK });
    const disk = new V86Disk(opfs);
    const emulator = new V86(guestOptions(images, { wasmPath: v86WasmUrl, hda: disk, memorySize: BENCH_MEMORY }) as never) as unknown as GuestEmulator;
    const barrier = await installFlushBarrier(emulator, disk, { v86Version: (JSON.parse(v86PackageJson) as { version: string }).version });
    let sync: SyncFigures | undefined;
    await measureGuest(emulator, 8, undefined, undefined, async (con) => void (sync = await measureSync(con, barrier, { counters: () => disk.stats })));
    await disk.close();
    await opfs.close();
    await client.deleteVolume({ backend: 'opfs', path: 'v86-sync-bench' });
    const results = syncResults('an OPFS volume (worker)', sync!);
    for (const r of results) console.log(JSON.stringify({ ...r, platform: 'chromium', crossOriginIsolated: globalThis.crossOriginIsolated }));
    for (const r of results) expect(Number.isFinite(r.ours) && r.ours > 0, r.name).toBe(true);
  } finally {
    await client.close();
    worker.terminate();
  }
}, 3_600_000);
