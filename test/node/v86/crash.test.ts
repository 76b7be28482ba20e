/**
 * Crash tests for VM snapshots (volume snapshot + machine-state file) on the fault-injecting
 * store: a crash at every store write of a snapshot leaves, after reopening, either no snapshot,
 * a disk-only snapshot, or a snapshot whose state decodes to exactly what was saved; never a
 * state without its disk, never a different state. The machine is a stand-in object with v86's
 * save/restore methods (the real emulator is covered by vm.test.ts and the e2e test).
 */
import { describe, expect, it } from 'vitest';
import { FaultController, FaultNamespace, type CrashMode, type TearMode } from '../../../src/store/fault.ts';
import { MemoryNamespace } from '../../../src/store/memory.ts';
import { Volume } from '../../../src/volume/volume.ts';
import { V86Disk } from '../../../src/v86/disk-adapter.ts';
import { decodeState } from '../../../src/v86/state-file.ts';
import { NamespaceStateStore } from '../../../src/v86/state-store.ts';
import { VmSnapshots, type V86Machine } from '../../../src/v86/vm-snapshots.ts';
import { equalBytes, Rng } from '../helpers/random.ts';

function machine(state: Uint8Array): V86Machine {
  let running = true;
  return {
    is_running: () => running,
    stop: () => void (running = false),
    run: () => void (running = true),
    restart: () => {},
    save_state: async () => state.slice().buffer,
    restore_state: async () => {},
  };
}

async function scenario(ns: FaultNamespace | MemoryNamespace, state: Uint8Array): Promise<void> {
  const vol = await Volume.create(ns, { size: 1 << 20, blockSize: 4096 });
  const disk = new V86Disk(vol, { flushIntervalMs: 60_000 });
  await new Promise<object>((r) => {
    disk.onload = r;
    disk.load();
  });
  disk.set(8192, new Uint8Array(4096).fill(9), () => {});
  const vm = new VmSnapshots(vol, disk, new NamespaceStateStore(ns), machine(state));
  await vm.snapshot('s1');
  await vol.close();
}

describe('VM snapshots under crashes', () => {
  it('a crash at any store write leaves no state without its disk, and no wrong state (seeded sweep)', async () => {
    const rng = new Rng(5);
    const state = new Uint8Array(256 * 1024);
    for (let p = 0; p < 64; p += 3) state.set(rng.bytes(4096), p * 4096);
    // Count the writes of a clean run.
    const counter = new FaultController({});
    await scenario(new FaultNamespace(new MemoryNamespace(), counter), state);
    const total = counter.writes;
    expect(total).toBeGreaterThan(4);
    const tears: TearMode[] = ['prefix', 'sectors', 'none', 'full'];
    const modes: CrashMode[] = ['keep-unflushed', 'drop-unflushed', 'random'];
    let withState = 0;
    let diskOnly = 0;
    for (let at = 0; at < total; at++) {
      for (const tear of tears) {
        const mode = modes[(at + tears.indexOf(tear)) % modes.length]!;
        const inner = new MemoryNamespace();
        const ctl = new FaultController({ crashAt: at, tear, seed: at + 1, sectorSize: 512 });
        await expect(scenario(new FaultNamespace(inner, ctl), state)).rejects.toMatchObject({ code: 'io' });
        await ctl.crash(mode);
        const after = new MemoryNamespace({ files: inner.files });
        let vol: Volume;
        try {
          vol = await Volume.open(after);
        } catch (e) {
          // The crash came before the volume's first manifest was durable: nothing to check.
          expect((e as { code?: string }).code).toMatch(/^(not-found|corrupt)$/);
          continue;
        }
        const snaps = vol.snapshots().map((s) => s.name);
        const states = await new NamespaceStateStore(after).list();
        for (const s of states) expect(snaps, `state ${s.name} without its disk (crash at ${at}, ${tear}, ${mode})`).toContain(s.name);
        if (states.length > 0) {
          const bytes = (await new NamespaceStateStore(after).get('s1'))!;
          try {
            expect(equalBytes(new Uint8Array(await decodeState(bytes, 's1')), state)).toBe(true);
            withState++;
          } catch (e) {
            expect((e as { code?: string }).code).toBe('corrupt');
          }
        } else if (snaps.includes('s1')) diskOnly++;
        await vol.close();
      }
    }
    expect(diskOnly).toBeGreaterThan(0);
    // Without a crash the snapshot has its state, decoding to exactly what was saved.
    const clean = new MemoryNamespace();
    await scenario(clean, state);
    const bytes = (await new NamespaceStateStore(clean).get('s1'))!;
    expect(equalBytes(new Uint8Array(await decodeState(bytes, 's1')), state)).toBe(true);
    console.log(`VM snapshot crash sweep: ${total} writes × 4 tears; disk-only ${diskOnly}, with state ${withState}`);
  });
});
