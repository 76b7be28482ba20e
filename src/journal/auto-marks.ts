/**
 * Marks that other parts add by themselves (issue 16, item 2): a consistency-group snapshot
 * marks the write log of each journaled volume of the set, and a VM snapshot marks its disk's
 * log, at the instant of the snapshot (writers frozen, the volume flushed), so a restore can go
 * to exactly what the snapshot holds without `--force`. The labels name the snapshot.
 */

/** The label of the mark a consistency-group snapshot named `snapshot` adds. */
export function groupMarkLabel(snapshot: string): string {
  return `group:${snapshot}`;
}

/** The label of the mark a VM snapshot named `snapshot` adds. */
export function vmMarkLabel(snapshot: string): string {
  return `vm:${snapshot}`;
}

/**
 * A consistency group's `onSnapshot` hook (CoordinatorOptions, GroupHostOptions) that marks
 * the log of each journaled volume with `group:NAME` while the set is still frozen. `journals`
 * maps the group's volume names to their logs (null or missing: the volume keeps none): a
 * Journal (openJournaled), or a RemoteVolume's `journal` for a host whose volumes are in a worker.
 */
export function markGroupSnapshots(journals: Readonly<Record<string, { mark(label: string): Promise<unknown> } | null | undefined>>): (volume: string, snapshot: string) => Promise<void> {
  return async (volume, snapshot) => {
    const j = journals[volume];
    if (j) await j.mark(groupMarkLabel(snapshot));
  };
}
