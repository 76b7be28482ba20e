/**
 * The host crashes at every store write of a set snapshot (two volumes on one simulated machine,
 * torn and unflushed writes per the fault store's modes). After reopening and
 * repairSnapshotSets, the set's snapshot is on both volumes or on neither, and where it exists
 * it satisfies the ledger invariant.
 */
import { describe, expect, it } from 'vitest';
import { checkLedger, LedgerWriter } from '../../../src/bench/ledger.js';
import { GroupHost } from '../../../src/consistency/host.js';
import { localLinkPair } from '../../../src/consistency/local.js';
import { Participant } from '../../../src/consistency/participant.js';
import { repairSnapshotSets } from '../../../src/consistency/repair.js';
import type { ToHost, ToMember } from '../../../src/consistency/protocol.js';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';

const BS = 4096;
const SET = 'cg-20260101T000000000Z-1';
const MODES: [CrashMode, TearMode][] = [
  ['keep-unflushed', 'prefix'],
  ['drop-unflushed', 'sectors'],
  ['random', 'sectors'],
];

/** Two volumes, two ledger writers, then the set snapshot. Returns the write counts around it. */
async function scenario(ctl: FaultController, innerA: MemoryNamespace, innerB: MemoryNamespace) {
  const a = await Volume.create(new FaultNamespace(innerA, ctl), { size: 1 << 20, blockSize: BS });
  const b = await Volume.create(new FaultNamespace(innerB, ctl), { size: 1 << 20, blockSize: BS });
  const host = new GroupHost({ a, b }, { deadAfterMs: 0 });
  const [m, h] = localLinkPair<ToHost, ToMember>();
  host.attach(h);
  const p = new Participant(m, { name: 'w' });
  await p.ready;
  const writers = [0, 1].map((w) => new LedgerWriter(w, p.volume('a'), p.volume('b')));
  for (let i = 0; i < 3; i++) for (const w of writers) await p.gate.run(() => w.transfer());
  const before = ctl.writes;
  let failed = false;
  try {
    await host.snapshot({ name: SET });
  } catch {
    failed = true;
  }
  const after = ctl.writes;
  p.close();
  host.close();
  return { before, after, failed };
}

describe('a host crash during a set snapshot', () => {
  it('leaves the set on every volume or on none, after repair', async () => {
    const probe = new FaultController({});
    const clean = await scenario(probe, new MemoryNamespace(), new MemoryNamespace());
    expect(clean.failed).toBe(false);
    expect(clean.after - clean.before).toBeGreaterThan(4);
    const outcomes = { both: 0, none: 0, repaired: 0 };
    for (let k = clean.before; k < clean.after; k++) {
      const [mode, tear] = MODES[k % MODES.length]!;
      const innerA = new MemoryNamespace();
      const innerB = new MemoryNamespace();
      const ctl = new FaultController({ crashAt: k, tear, seed: k + 1, sectorSize: 512 });
      const r = await scenario(ctl, innerA, innerB);
      expect(r.failed, `crash at ${k}`).toBe(true);
      await ctl.crash(mode);
      const a = await Volume.open(innerA);
      const b = await Volume.open(innerB);
      try {
        const removed = await repairSnapshotSets({ a, b }, (n) => n === SET);
        if (removed.length > 0) outcomes.repaired++;
        const onA = a.snapshots().some((s) => s.name === SET);
        const onB = b.snapshots().some((s) => s.name === SET);
        expect(onA, `crash at ${k} (${mode}, ${tear})`).toBe(onB);
        if (onA) {
          outcomes.both++;
          expect(await checkLedger(a.openSnapshot(SET), b.openSnapshot(SET), 2, BS)).toEqual([]);
        } else outcomes.none++;
      } finally {
        await a.close();
        await b.close();
      }
    }
    // The sweep saw sets torn between the volumes (and repaired them).
    expect(outcomes.repaired).toBeGreaterThan(0);
    expect(outcomes.none).toBeGreaterThan(0);
  });

  it('keeps snapshots that are not sets, and whole sets', async () => {
    const a = await Volume.create(new MemoryNamespace(), { size: 1 << 20, blockSize: BS });
    const b = await Volume.create(new MemoryNamespace(), { size: 1 << 20, blockSize: BS });
    await a.snapshot('mine');
    await a.snapshot('cg-20260101T000000000Z-1');
    await b.snapshot('cg-20260101T000000000Z-1');
    await a.snapshot('cg-20260101T000000001Z-2');
    expect(await repairSnapshotSets({ a, b })).toEqual(['cg-20260101T000000001Z-2']);
    expect(a.snapshots().map((s) => s.name)).toEqual(['mine', 'cg-20260101T000000000Z-1']);
    expect(b.snapshots().map((s) => s.name)).toEqual(['cg-20260101T000000000Z-1']);
  });
});
