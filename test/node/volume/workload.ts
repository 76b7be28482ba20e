import { MemoryNamespace } from '../../../src/store/memory.js';
import type { StoreNamespace } from '../../../src/store/store.js';
import { Volume } from '../../../src/volume/volume.js';
import { isStrataError } from '../../../src/errors.js';
import { Rng } from '../helpers/random.js';

/** What the volume must hold: the live view and every snapshot. */
export interface State {
  live: Uint8Array;
  snaps: Map<string, Uint8Array>;
}

export interface Outcome {
  /** state after the last durability operation that completed */
  committed: State;
  /** state the durability operation in progress at the crash would have produced, if any */
  pending: State | null;
  /** how many mutating store calls the run made (when it did not crash) */
  ops: number;
  crashed: boolean;
  /** false when the crash came before Volume.create returned */
  created: boolean;
}

export const BS = 4096;
export const BLOCKS = 24;
export const SIZE = BS * BLOCKS;

/** Snapshot contents are never mutated once taken, so states share them. */
function cloneState(s: State): State {
  return { live: s.live.slice(), snaps: new Map(s.snaps) };
}

/**
 * A seeded workload of mixed writes (partial and whole blocks, zeros), flushes, snapshots,
 * reverts and snapshot deletions. It runs until done or until the namespace "crashes", and
 * tracks which states are acceptable after a crash.
 */
export async function runWorkload(ns: StoreNamespace, seed: number, steps: number): Promise<Outcome> {
  const rng = new Rng(seed);
  let current: State = { live: new Uint8Array(SIZE), snaps: new Map() };
  let committed: State = cloneState(current);
  let pending: State | null = null;
  let vol: Volume;
  try {
    pending = cloneState(current);
    // A tiny compaction threshold, so the sweep also crashes inside map compactions.
    vol = await Volume.create(ns, { size: SIZE, blockSize: BS, compactMapBytes: 2048 });
    committed = pending;
    pending = null;
  } catch {
    return { committed, pending, ops: 0, crashed: true, created: false };
  }
  let counter = 0;
  try {
    for (let step = 0; step < steps; step++) {
      const r = rng.next();
      if (r < 0.62) {
        const len = rng.pick([1, 100, BS - 1, BS, BS + 7, 2 * BS, 3 * BS + 1]);
        const off = rng.int(SIZE - len);
        const data = rng.next() < 0.1 ? new Uint8Array(len) : rng.bytes(len, step);
        if (step % 4 === 0) {
          // The same bytes as two adjacent ranges of one writeRanges call.
          const k = len >> 1;
          await vol.writeRanges([{ offset: off, length: k }, { offset: off + k, length: len - k }], data);
        } else {
          await vol.write(off, data);
        }
        current.live.set(data, off);
      } else if (r < 0.66) {
        const len = rng.range(1, 3 * BS);
        const off = rng.int(SIZE - len);
        await vol.writeZeroes(off, len);
        current.live.fill(0, off, off + len);
      } else if (r < 0.82) {
        pending = cloneState(current);
        await vol.flush();
        committed = pending;
        pending = null;
      } else if (r < 0.9) {
        const name = `s${counter++}`;
        const next = cloneState(current);
        next.snaps.set(name, current.live.slice());
        pending = next;
        await vol.snapshot(name);
        committed = pending;
        current = cloneState(pending);
        pending = null;
      } else if (r < 0.94 && current.snaps.size > 0) {
        const name = rng.pick([...current.snaps.keys()].sort());
        const next = cloneState(current);
        next.live = current.snaps.get(name)!.slice();
        pending = next;
        await vol.revert(name);
        committed = pending;
        current = cloneState(pending);
        pending = null;
      } else if (current.snaps.size > 0) {
        const name = rng.pick([...current.snaps.keys()].sort());
        const next = cloneState(current);
        next.snaps.delete(name);
        pending = next;
        await vol.deleteSnapshot(name);
        committed = pending;
        current = cloneState(pending);
        pending = null;
      }
    }
    pending = cloneState(current);
    await vol.close();
    committed = pending;
    pending = null;
  } catch {
    return { committed, pending, ops: 0, crashed: true, created: true };
  }
  return { committed, pending, ops: 0, crashed: false, created: true };
}

/**
 * After a crash, the reopened volume's live view must equal the committed or the pending live
 * state, its snapshot list must equal one of the two lists, and each snapshot must hold exactly
 * the content it was taken with. Returns a description of the first violation, or null.
 */
export async function verifyRecovered(ns: StoreNamespace, outcome: Outcome, writable: boolean): Promise<string | null> {
  let vol: Volume;
  try {
    vol = await Volume.open(ns, { readOnly: !writable });
  } catch (e) {
    // A creation that never completed may leave nothing, or a torn first manifest.
    if (!outcome.created && isStrataError(e) && (e.code === 'not-found' || e.code === 'corrupt')) return null;
    throw e;
  }
  try {
    const live = await vol.read(0, SIZE);
    const candidates = [outcome.committed, ...(outcome.pending ? [outcome.pending] : [])];
    if (!candidates.some((c) => same(c.live, live))) return 'live view matches neither the last durable state nor the one being committed';
    const names = vol.snapshots().map((s) => s.name).sort().join(',');
    const allowed = candidates.map((c) => [...c.snaps.keys()].sort().join(','));
    if (!allowed.includes(names)) return `snapshot list [${names}] is not one of [${allowed.join('] or [')}]`;
    for (const s of vol.snapshots()) {
      const want = candidates.map((c) => c.snaps.get(s.name)).find((x) => x !== undefined)!;
      const got = await vol.openSnapshot(s.name).read(0, SIZE);
      if (!same(want, got)) return `snapshot ${s.name} changed`;
    }
    const report = await vol.check();
    if (!report.ok) return `check failed: ${report.problems[0]!.message}`;
    return null;
  } finally {
    await vol.close();
  }
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A fresh memory namespace holding a copy of `src`'s files (so one image can be checked several ways). */
export function copyNamespace(src: MemoryNamespace): MemoryNamespace {
  const out = new MemoryNamespace();
  for (const [name, b] of src.files) {
    const c = new (b.constructor as new (x?: Uint8Array) => typeof b)(b.contents());
    out.files.set(name, c);
  }
  return out;
}
