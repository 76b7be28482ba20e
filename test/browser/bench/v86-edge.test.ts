/**
 * Booting the v86 test guest from the network, in Chromium: requests and bytes fetched with the
 * disk as a copy-on-read stratadisk volume (memory, on the page) over the edge URL
 * `/IMAGE/latest` vs v86's own HTTP disk (`hda: { url, async: true, size }`) on the raw image
 * served by a plain range server. Same ext2 image (made with `mke2fs -d`), same workload: boot to
 * the shell (the guest's /init mounts /dev/sda on /mnt), `cat` a small file, `ls -R /mnt`,
 * `md5sum` an 8 MiB file. The servers, set up by edge-boot.global.ts, count what they send;
 * HttpStore's own counters are read too. Figures are counts; the times are labelled (the machine
 * may be loaded). Boots Linux twice, so it runs only in `npm run bench:browser`.
 */
import { expect, inject, it } from 'vitest';
import { V86 } from 'v86';
import v86WasmUrl from 'v86/build/v86.wasm?url';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { V86Disk } from '../../../src/v86/disk-adapter.js';
import { fetchGuest, GUEST_READY, guestOptions, type GuestImages } from '../../../src/v86/guest.js';
import { SerialConsole } from '../../../src/v86/serial-console.js';
import type { GuestEmulator } from '../../../src/bench/v86-guest.js';
import type { HttpStats } from '../../../src/store/http.js';
import type { ServerCounters } from './edge-boot.global.js';

const full = (import.meta as unknown as { env: Record<string, string | undefined> }).env.VITE_STRATADISK_BENCH === '1';
const servers = inject('edgeBoot');
const TIMEOUT = 1_200_000;

interface Counters {
  edge: ServerCounters;
  raw: ServerCounters;
}

/** A server's counts over one phase of the workload. */
interface Phase {
  requests: number;
  preflights: number;
  bytes: number;
  ranges: string[];
}

interface BootFigures {
  /** power-on to the shell prompt */
  bootMs: number;
  /** power-on to the small file's contents on the console */
  fileMs: number;
  /** power-on to the end of ls -R and md5sum */
  totalMs: number;
  /** the server's counts: power-on to the file on the console; then ls -R and md5sum of the big file; then the same md5sum after the guest dropped its page cache */
  toFile: Phase;
  rest: Phase;
  reread: Phase;
  /** resource-timing entries the page saw for the disk URL over the whole run */
  pageRequests: number;
}

async function counters(reset = false): Promise<Counters> {
  const r = await fetch(`${servers!.control}/${reset ? 'reset' : 'counters'}`);
  return (await r.json()) as Counters;
}

function since(before: ServerCounters, after: ServerCounters): Phase {
  return { requests: after.requests - before.requests, preflights: after.preflights - before.preflights, bytes: after.bytes - before.bytes, ranges: after.ranges.slice(before.ranges.length) };
}

/** Make the disk (its requests counted), boot, run the workload, read the counters of `which` server by phase, tear down. */
async function bootAndRead(images: GuestImages, makeDisk: () => Promise<object>, which: keyof Counters, diskUrl: string): Promise<BootFigures> {
  performance.clearResourceTimings();
  const zero = (await counters(true))[which];
  const t0 = performance.now();
  const hda = await makeDisk();
  const emulator = new V86(guestOptions(images, { wasmPath: v86WasmUrl, hda }) as never) as unknown as GuestEmulator;
  const con = new SerialConsole(emulator);
  try {
    await con.waitFor(GUEST_READY, TIMEOUT);
    await con.waitFor('# ', 60_000);
    const bootMs = performance.now() - t0;
    expect(await con.run('cat /mnt/hello.txt', TIMEOUT)).toBe(servers!.hello);
    const fileMs = performance.now() - t0;
    const atFile = (await counters())[which];
    const listing = await con.run('ls -R /mnt', TIMEOUT);
    expect(listing).toContain('conf15.txt');
    const sum = await con.run('md5sum /mnt/big.bin', TIMEOUT);
    expect(sum.split(/\s+/)[0]).toBe(servers!.bigMd5);
    const totalMs = performance.now() - t0;
    const atEnd = (await counters())[which];
    await con.run('sync; echo 3 > /proc/sys/vm/drop_caches', TIMEOUT);
    const beforeReread = (await counters())[which];
    const again = await con.run('md5sum /mnt/big.bin', TIMEOUT);
    expect(again.split(/\s+/)[0]).toBe(servers!.bigMd5);
    const afterReread = (await counters())[which];
    const pageRequests = performance.getEntriesByType('resource').filter((e) => e.name === diskUrl).length;
    return { bootMs, fileMs, totalMs, toFile: since(zero, atFile), rest: since(atFile, atEnd), reread: since(beforeReread, afterReread), pageRequests };
  } finally {
    con.detach();
    await emulator.stop();
    await emulator.destroy();
  }
}

/** Request sizes: count by size in KiB. */
function sizes(ranges: string[]): Record<string, number> {
  const h: Record<string, number> = {};
  for (const r of ranges) {
    const m = /^bytes=(\d+)-(\d+)$/.exec(r);
    const k = m ? `${(Number(m[2]) - Number(m[1]) + 1) / 1024}` : r || 'whole';
    h[k] = (h[k] ?? 0) + 1;
  }
  return h;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

it.skipIf(!full || !servers)('v86 guest booting from the edge URL (copy-on-read volume) vs v86\'s own HTTP disk on the raw image: requests and bytes (npm run bench:browser only)', async () => {
  const images = await fetchGuest('/vm-guest/').catch(() => undefined);
  if (!images) {
    console.log(JSON.stringify({ name: 'v86 edge boot', note: 'skipped: build/guest is missing; run bash .ci/build-guest.sh as root' }));
    return;
  }
  const s = servers!;
  performance.setResourceTimingBufferSize(1_000_000);

  // peer: v86's own HTTP disk (AsyncXHRBuffer): one XHR range request per guest read it does not hold
  const peer = await bootAndRead(images, async () => ({ url: s.rawUrl, async: true, size: s.size }), 'raw', s.rawUrl);

  // ours: a copy-on-read volume in memory on the page over /guest/latest (its pin request
  // counted), under V86Disk; first both with their defaults, then with V86Disk's read-ahead
  // capped at 1 MiB (what the default read-ahead costs in bytes)
  const oursWith = async (diskOptions: { readAheadBytes?: number }): Promise<[BootFigures, HttpStats]> => {
    let volume: Volume | undefined;
    let disk: V86Disk | undefined;
    try {
      const f = await bootAndRead(images, async () => {
        volume = await Volume.createFromImage(new MemoryNamespace(), s.edgeUrl);
        return (disk = new V86Disk(volume, diskOptions));
      }, 'edge', s.edgeUrl);
      return [f, volume!.info().remote!.http];
    } finally {
      await disk?.close();
      await volume?.close();
    }
  };
  const [ours, http] = await oursWith({});
  const [capped, cappedHttp] = await oursWith({ readAheadBytes: 1 << 20 });

  const common = { platform: 'chromium', peerName: "v86's HTTP disk (hda: { url, async: true, size }) on the raw image, plain range server", image: `${s.size / 2 ** 20} MiB ext2 (mke2fs -d)` };
  const both = (f: BootFigures) => ({ requests: f.toFile.requests + f.rest.requests, bytes: f.toFile.bytes + f.rest.bytes });
  const o = both(ours);
  const p = both(peer);
  const extra = `preflights ours ${ours.toFile.preflights + ours.rest.preflights} / peer ${peer.toFile.preflights + peer.rest.preflights} (not counted above); ours: HttpStore counted ${http.requests} requests, ${http.bytes} bytes, ${http.retries} retries over the whole run`;
  const rows = [
    { name: 'v86 boot from the network: requests, power-on to a file read (boot to shell, cat)', ours: ours.toFile.requests, peer: peer.toFile.requests, ratio: round(peer.toFile.requests / ours.toFile.requests), unit: 'requests', note: `ratio = peer/ours (higher: ours makes fewer); GET requests counted by each server; ours includes the pin request (bytes=0-0)` },
    { name: 'v86 boot from the network: bytes fetched, power-on to a file read (boot to shell, cat)', ours: ours.toFile.bytes, peer: peer.toFile.bytes, ratio: round(ours.toFile.bytes / peer.toFile.bytes), unit: 'bytes', note: 'ratio = ours/peer (lower: ours fetches less); response body bytes counted by each server' },
    { name: 'v86 boot from the network: requests, boot + cat + ls -R + md5sum of an 8 MiB file', ours: o.requests, peer: p.requests, ratio: round(p.requests / o.requests), unit: 'requests', note: `ratio = peer/ours; ${extra}` },
    { name: 'v86 boot from the network: bytes fetched, boot + cat + ls -R + md5sum of an 8 MiB file', ours: o.bytes, peer: p.bytes, ratio: round(o.bytes / p.bytes), unit: 'bytes', note: 'ratio = ours/peer; ours reads 64 KiB blocks with read-ahead (V86Disk and the copy-on-read store, defaults) and keeps them; v86 asks exactly for each guest read' },
    { name: 'v86 boot from the network: the 8 MiB file read again after the guest dropped its page cache', ours: ours.reread.requests, peer: peer.reread.requests, ratio: null, unit: 'requests', note: `bytes ours ${ours.reread.bytes} / peer ${peer.reread.bytes}: ours holds what it fetched (V86Disk's page cache, then the copy-on-read volume's cache layer); v86's HTTP disk keeps no read data (no fixed_chunk_size) and fetches it again` },
    { name: 'v86 boot from the network: power-on to a file read (machine under CI load)', ours: round(ours.fileMs / 1000), peer: round(peer.fileMs / 1000), ratio: round(peer.fileMs / ours.fileMs), unit: 's', note: `ratio = peer/ours; shell prompt at ${round(ours.bootMs / 1000)} s / ${round(peer.bootMs / 1000)} s; + ls -R and md5sum ${round(ours.totalMs / 1000)} s / ${round(peer.totalMs / 1000)} s; loopback servers; both dominated by the emulated CPU` },
  ];
  const c = both(capped);
  rows.push(
    { name: 'v86 boot from the network: requests, boot + cat + ls -R + md5sum of an 8 MiB file (ours: V86Disk read-ahead capped at 1 MiB)', ours: c.requests, peer: p.requests, ratio: round(p.requests / c.requests), unit: 'requests', note: `ratio = peer/ours; to the file ${capped.toFile.requests} requests; HttpStore counted ${cappedHttp.requests} requests` },
    { name: 'v86 boot from the network: bytes fetched, boot + cat + ls -R + md5sum of an 8 MiB file (ours: V86Disk read-ahead capped at 1 MiB)', ours: c.bytes, peer: p.bytes, ratio: round(c.bytes / p.bytes), unit: 'bytes', note: `ratio = ours/peer; to the file ${capped.toFile.bytes} bytes; power-on to the file ${round(capped.fileMs / 1000)} s, + ls -R and md5sum ${round(capped.totalMs / 1000)} s (under load); re-read after drop_caches: ${capped.reread.requests} requests` },
  );
  for (const r of rows) console.log(JSON.stringify({ ...r, ...common }));
  console.log(JSON.stringify({ name: 'v86 boot from the network: request sizes (KiB: count)', ours: { toFile: sizes(ours.toFile.ranges), rest: sizes(ours.rest.ranges) }, oursCapped: { toFile: sizes(capped.toFile.ranges), rest: sizes(capped.rest.ranges) }, peer: { toFile: sizes(peer.toFile.ranges), rest: sizes(peer.rest.ranges) }, pageRequests: { ours: ours.pageRequests, peer: peer.pageRequests } }));
  expect(o.requests).toBeGreaterThan(0);
  expect(p.requests).toBeGreaterThan(0);
  // the volume received only what the edge server sent
  expect(http.bytes).toBeLessThanOrEqual(o.bytes + ours.reread.bytes);
}, 3_600_000);
