/**
 * What a guest's `sync` costs with the flush barrier (src/v86/flush-barrier.ts) on and off, in one
 * booted guest: the barrier is switched per side, in paired rounds, so both sides meet the same
 * machine load. Off is plain v86 (a flush completes at once; the guest still sees a write cache,
 * so it sends the same commands).
 * - `sync` after a small write: one console command in which the guest appends a line to a file
 *   and runs `sync`, `syncs` times; its time (less the console's round trip, timed with `true`)
 *   divided by `syncs`;
 * - `dd bs=1M count=16 conv=fsync` of random data: MB/s including the final fsync.
 */
import type { FlushBarrier } from '../v86/flush-barrier.js';
import type { SerialConsole } from '../v86/serial-console.js';
import { median, result, runPairedRounds, type BenchResult } from './result.js';

export interface SyncFigures {
  /** per round: ms per (small write + `sync`), barrier on / off */
  syncOnMs: number[];
  syncOffMs: number[];
  /** per round: dd conv=fsync MB/s, barrier on / off */
  ddOnMBs: number[];
  ddOffMBs: number[];
  /** median ms of `true` on the console (the round trip inside every timed command) */
  consoleMs: number;
  syncs: number;
  /** with the barrier on: guest flushes held, and the mean ms each waited for the volume (the adapter's counters) */
  heldFlushes?: number;
  heldMs?: number;
  ddMiB: number;
}

async function timed(con: SerialConsole, command: string): Promise<number> {
  const t0 = performance.now();
  await con.run(command, 600_000);
  return performance.now() - t0;
}

/** What measureSync reads of the disk's counters (`V86Disk.stats`). */
export interface FlushCounters {
  guestFlushes: number;
  guestFlushWaitMs: number;
}

/** Measure in a booted guest whose disk has `barrier` installed; leaves the barrier on. */
export async function measureSync(con: SerialConsole, barrier: FlushBarrier, opts: { rounds?: number; syncs?: number; ddMiB?: number; counters?: () => FlushCounters } = {}): Promise<SyncFigures> {
  const rounds = opts.rounds ?? 3;
  const syncs = opts.syncs ?? 16;
  const ddMiB = opts.ddMiB ?? 16;
  const bytes = ddMiB * 2 ** 20;
  await con.run(`dd if=/dev/urandom of=/tmp/sync-src bs=64k count=16 2>/dev/null; for i in $(seq ${Math.log2(ddMiB)}); do cat /tmp/sync-src /tmp/sync-src > /tmp/dbl; mv /tmp/dbl /tmp/sync-src; done; sync`, 600_000);
  const probes: number[] = [];
  for (let i = 0; i < 5; i++) probes.push(await timed(con, 'true'));
  const consoleMs = median(probes);
  let held = 0;
  let heldMs = 0;
  const side = (on: boolean) => async () => {
    barrier.enabled = on;
    const c0 = on ? opts.counters?.() : undefined;
    const loopMs = await timed(con, `for i in $(seq ${syncs}); do echo line-$i >> /mnt/sync-small.txt; sync; done`);
    const ddMs = await timed(con, `dd if=/tmp/sync-src of=/mnt/sync-dd bs=1M count=${ddMiB} conv=fsync 2>/dev/null`);
    const c1 = c0 && opts.counters?.();
    if (c0 && c1) {
      held += c1.guestFlushes - c0.guestFlushes;
      heldMs += c1.guestFlushWaitMs - c0.guestFlushWaitMs;
    }
    await con.run('rm -f /mnt/sync-dd /mnt/sync-small.txt; sync');
    return { syncMs: Math.max(0, loopMs - consoleMs) / syncs, ddMBs: bytes / 1e6 / (ddMs / 1000) };
  };
  try {
    const [on, off] = await runPairedRounds([side(true), side(false)], rounds);
    return {
      syncOnMs: on!.map((f) => f.syncMs),
      syncOffMs: off!.map((f) => f.syncMs),
      ddOnMBs: on!.map((f) => f.ddMBs),
      ddOffMBs: off!.map((f) => f.ddMBs),
      consoleMs,
      syncs,
      ddMiB,
      ...(opts.counters ? { heldFlushes: held, heldMs: held > 0 ? heldMs / held : 0 } : {}),
    };
  } finally {
    barrier.enabled = true;
    await con.run('rm -f /tmp/sync-src', 600_000);
  }
}

/** The figures as result lines: ours = barrier on, peer = plain v86 (barrier off), same guest. */
export function syncResults(label: string, f: SyncFigures): BenchResult[] {
  const peerName = 'plain v86 (guest flush completes at once)';
  const paired = (name: string, ours: number[], peer: number[], unit: string, ratioOf: (o: number, p: number) => number, note: string): BenchResult => {
    const ratios = ours.map((o, i) => ratioOf(o, peer[i]!));
    const r = result(name, median(ours), median(peer), unit, peerName, undefined, note);
    const round = (x: number) => Math.round(x * 1000) / 1000;
    r.ratio = round(median(ratios));
    r.ratioMin = round(Math.min(...ratios));
    r.ratioMax = round(Math.max(...ratios));
    r.rounds = ratios.length;
    return r;
  };
  const held = f.heldFlushes !== undefined ? `; with the barrier each guest flush waited ${f.heldMs!.toFixed(1)} ms for the volume (mean of ${f.heldFlushes})` : '';
  return [
    paired(`v86 guest sync after a small write, disk on ${label}`, f.syncOnMs, f.syncOffMs, 'ms', (o, p) => p / o,
      `ratio = peer time / our time (< 1: the barrier's cost); ms per small write + sync, ${f.syncs} in one console command per round (its round trip, ${Math.round(f.consoleMs)} ms for \`true\`, subtracted)${held}`),
    paired(`v86 guest dd ${f.ddMiB} MiB conv=fsync, disk on ${label}`, f.ddOnMBs, f.ddOffMBs, 'MB/s', (o, p) => o / p, 'ratio = ours / peer; random data, bs=1M, fsync at the end'),
  ];
}
