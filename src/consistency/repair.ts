/**
 * A host that crashes while it snapshots a set can leave the set's snapshot on some volumes
 * only (each volume's snapshot is crash-safe on its own: it is there or not). Run this when the
 * host opens the volumes again: a set snapshot found on some volumes but not all is deleted
 * from those that have it, so every set is on all volumes or on none.
 */
import type { SnapshotTarget } from './coordinator.js';

/** A volume as the repair sees it: Volume (snapshots() is synchronous) or RemoteVolume. */
export interface SetMember extends SnapshotTarget {
  snapshots(): { name: string }[] | Promise<{ name: string }[]>;
}

/** Snapshots the coordinator names by default (`cg-<UTC time>-<attempt>`). */
export const isDefaultSetName = (name: string): boolean => /^cg-\d{8}T\d{9}Z-\d+$/.test(name);

/**
 * Delete partial set snapshots. `isSetSnapshot` says which snapshot names are set snapshots
 * (default: the coordinator's default names; pass your own when you name sets yourself —
 * snapshots taken of one volume outside the group must not match). Returns the names removed.
 */
export async function repairSnapshotSets(volumes: Record<string, SetMember>, isSetSnapshot: (name: string) => boolean = isDefaultSetName): Promise<string[]> {
  const members = Object.values(volumes);
  const names = await Promise.all(members.map(async (v) => new Set((await v.snapshots()).map((s) => s.name).filter(isSetSnapshot))));
  const all = new Set(names.flatMap((s) => [...s]));
  const partial = [...all].filter((n) => names.some((s) => !s.has(n)));
  for (const n of partial) {
    for (let i = 0; i < members.length; i++) if (names[i]!.has(n)) await members[i]!.deleteSnapshot(n);
  }
  return partial.sort();
}
