/**
 * Replication requests on a secondary's control socket (`stratadisk serve-replica`): status, and
 * promote (failover), which ends the session and the server. Block jobs are refused there: a
 * secondary takes writes from its primary only.
 */
import { StrataError } from '../errors.js';
import type { ControlMessage, ReplicationControl, ReplicationRequest } from '../jobs/control.js';
import { promote } from './role-change.js';
import type { Secondary } from './secondary.js';

export interface SecondaryControlHooks {
  /** stop taking primaries (called before a promotion ends the session) */
  stopListening(): Promise<void>;
  /** the volume is a primary now: the server ends */
  onPromoted(): void;
}

export function secondaryReplicationControl(secondary: Secondary, url: string, hooks: SecondaryControlHooks): ReplicationControl {
  return {
    refuseJobs: true,
    async handle(req: ReplicationRequest, send: (m: ControlMessage) => void): Promise<void> {
      switch (req.op) {
        case 'replication-status': {
          const s = secondary.status();
          send({ type: 'replication', status: { role: s.role.role, generation: s.role.gen.current, consistent: s.role.consistent, resyncSnapshot: s.role.resyncSnapshot, listening: url, secondary: s } });
          return;
        }
        case 'replication-promote': {
          if (secondary.status().connected && req.force !== true) {
            throw new StrataError('locked', `${secondary.label} is connected to its primary (session ${secondary.status().session ?? '?'}). Stop that session first (stop \`replicate\`, or \`stratadisk replication freeze\` on the primary), or promote with --force to cut it off.`);
          }
          // no primary may connect between the end of this session and the new role
          await hooks.stopListening();
          await secondary.close();
          const change = await promote(secondary.volume, secondary.role, secondary.label, { force: req.force === true, revertToConsistent: req.revertToConsistent === true });
          send({ type: 'replication', status: { role: change.after.role, generation: change.after.gen.current, notes: change.notes } });
          hooks.onPromoted();
          return;
        }
        case 'replicate':
          throw new StrataError('invalid-argument', `${secondary.label} is a replication secondary; it cannot replicate to another. Promote it first.`);
        case 'replication-freeze':
        case 'replication-resume':
          throw new StrataError('invalid-argument', `${secondary.label} is a secondary: freeze and resume act on the primary's sessions. Run them against the primary's directory.`);
        default:
          throw new StrataError('unsupported', `Unknown replication request "${String((req as { op?: unknown }).op)}".`);
      }
    },
  };
}
