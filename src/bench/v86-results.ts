/** v86 benchmark figures as BenchResult lines (shared by the Node and the Chromium runs). */
import { result, type BenchResult } from './result.js';
import type { GuestFigures } from './v86-guest.js';

/** Boot, dd write and dd read of one stratadisk disk against the ArrayBuffer peer (same run). */
export function v86Results(label: string, ours: GuestFigures, peer: GuestFigures, target?: number, mib = 64): BenchResult[] {
  const peerName = 'v86 on an ArrayBuffer disk';
  const boot = result(`v86 boot to shell, disk on ${label}`, ours.bootMs / 1000, peer.bootMs / 1000, 's', peerName, undefined, 'ratio = peer time / our time (> 1: we boot faster)');
  boot.ratio = Math.round((peer.bootMs / ours.bootMs) * 1000) / 1000;
  return [
    boot,
    result(`v86 guest dd write ${mib} MiB + fsync, disk on ${label}`, ours.writeMBs, peer.writeMBs, 'MB/s', peerName, target, phaseNote(ours.writePhase, ours.writeMs)),
    result(`v86 guest dd read ${mib} MiB (caches dropped), disk on ${label}`, ours.readMBs, peer.readMBs, 'MB/s', peerName, target, phaseNote(ours.readPhase, ours.readMs)),
  ];
}


/** Where a dd phase's time went, from the adapter's counters (load-independent, unlike the MB/s). */
function phaseNote(c: Record<string, number> | undefined, ms: number | undefined): string | undefined {
  if (!c || ms === undefined) return undefined;
  const n = (k: string) => c[k] ?? 0;
  return (
    `guest waited ${Math.round(n('missWaitMs'))} ms of ${Math.round(ms)} ms for ${n('misses')} read misses; ` +
    `${n('volumeReads')} volume reads (${n('prefetches')} ahead of the guest), ${n('volumeWrites')} volume writes, ${n('volumeFlushes')} flushes; ` +
    `DMA back-pressure ${Math.round(n('writeStallMs'))} ms`
  );
}
