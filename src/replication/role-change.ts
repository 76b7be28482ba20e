/**
 * Role changes of a volume (failover and failback, DRBD's `primary` / `secondary`):
 * - promote: a secondary becomes a primary with a new data generation (./roles.ts), so a later
 *   pairing with its old primary tells who went on alone, or that both did (split brain).
 *   A secondary caught in a resync holds no single point in time: promotion is refused unless
 *   `force` (take it as it is) or `revertToConsistent` (go back to the snapshot the resync kept
 *   of its last consistent state, then promote);
 * - demote: a primary becomes a secondary (it takes writes from a primary only from then on).
 * Both write the role record durably; the caller holds the volume open for writing (so no other
 * process replicates it meanwhile).
 */
import { StrataError } from '../errors.js';
import type { Volume } from '../volume/volume.js';
import { LIMITS } from './protocol.js';
import { FRESH_GENERATION, nextGeneration, type RoleRecord, type RoleState } from './roles.js';

export interface PromoteOptions {
  force?: boolean;
  revertToConsistent?: boolean;
}

export interface RoleChange {
  before: RoleState;
  after: RoleState;
  /** what was done besides the role, for a message */
  notes: string[];
}

export async function promote(volume: Volume, role: RoleRecord, label: string, options: PromoteOptions = {}): Promise<RoleChange> {
  const before = role.state;
  const notes: string[] = [];
  if (before.role === 'primary') throw new StrataError('invalid-argument', `${label} is a primary already.`);
  if (before.role === 'none' || before.gen.current === FRESH_GENERATION) {
    throw new StrataError('invalid-argument', `${label} never received a replica (no data generation): there is nothing to fail over to. It is a plain volume; use it as it is.`);
  }
  if (!before.consistent) {
    const snap = before.resyncSnapshot;
    if (options.revertToConsistent) {
      if (!snap || !volume.snapshots().some((s) => s.name === snap)) {
        throw new StrataError('not-found', `${label} keeps no snapshot of its last consistent state (the resync began on an empty copy); only --force promotes it as it is.`);
      }
      await volume.revert(snap);
      await volume.deleteSnapshot(snap).catch(() => {});
      notes.push(`reverted to snapshot ${snap}, the last consistent state before the interrupted resync`);
    } else if (!options.force) {
      throw new StrataError(
        'invalid-argument',
        `${label} is inconsistent: a resync from its primary was interrupted, so its blocks belong to no single point in time. ` +
          (snap ? `Promote with --revert-to-consistent to go back to its last consistent state (snapshot ${snap}), or ` : '') +
          `finish the resync (restart the primary's session), or promote with --force to take it as it is.`,
      );
    } else {
      notes.push(snap ? `promoted while inconsistent (--force); the last consistent state is kept as snapshot ${snap}` : 'promoted while inconsistent (--force)');
    }
  }
  const after = await role.update((s) => ({ ...s, role: 'primary', gen: nextGeneration(s.gen), consistent: true, resyncSnapshot: null }));
  return { before, after, notes };
}

export async function demote(role: RoleRecord, label: string, options: { discardMyData?: boolean } = {}): Promise<RoleChange> {
  const before = role.state;
  if (options.discardMyData) {
    // DRBD's split-brain recovery: this side gives up what it wrote apart. Its data generation
    // becomes the fresh one, so the next primary copies everything over it (nothing is merged).
    const after = await role.update((s) => ({ ...s, role: 'secondary', consistent: false, peer: null, content: null, gen: { current: FRESH_GENERATION, history: [s.gen.current, ...s.gen.history].slice(0, LIMITS.maxHistory) } }));
    return { before, after, notes: [`${label} will be overwritten entirely by the next primary that pairs with it.`] };
  }
  if (before.role === 'secondary') throw new StrataError('invalid-argument', `${label} is a secondary already.`);
  // the demoted side's data is its own generation: a primary that pairs with it finds where they parted
  const after = await role.update((s) => ({ ...s, role: 'secondary', consistent: s.role === 'primary' ? true : s.consistent }));
  return { before, after, notes: [] };
}
