import { isNoControlSocket, requestControl, type ReplicationRequest } from '../../jobs/control.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { OutOfSync } from '../../replication/out-of-sync.js';
import { persistedSessions, sessionFiles } from '../../replication/node-host.js';
import { demote, promote } from '../../replication/role-change.js';
import { RoleRecord } from '../../replication/roles.js';
import { JSON_OPTION, type Command } from '../command.js';
import { formatBytes } from '../size.js';
import { line, table, UsageError, type CliIo } from '../io.js';
import { openVolume } from '../target.js';
import { StrataError } from '../../errors.js';

const ACTIONS = ['status', 'freeze', 'resume', 'promote', 'demote'] as const;
type Action = (typeof ACTIONS)[number];

export const replicationCommand: Command = {
  name: 'replication',
  summary: 'replication sessions of a volume: status, freeze, resume, promote, demote',
  usage: 'replication status [DIR] [--json] | replication freeze|resume DIR | replication promote DIR [--force | --revert-to-consistent] | replication demote DIR [--discard-my-data]',
  details: [
    '  status    each session of the process holding DIR (serve-nbd, replicate, serve-replica):',
    '            state, mode, group, lag (writes and bytes not yet durable on the secondary),',
    '            bytes out of sync, resync progress, last error. When nothing holds DIR: its role',
    '            record and the bytes each session\'s persisted bitmap marks out of sync.',
    '  freeze    stop every session of the process holding DIR at once (writes go on, recorded',
    '            out of sync; or wait, policy block)',
    '  resume    reconnect every stopped session and resynchronise what its secondary lacks',
    '  promote   make a secondary a primary (failover) with a new data generation; a running',
    '            serve-replica stops. Refused while a resync is interrupted (no single point in',
    '            time): --revert-to-consistent goes back to the snapshot kept of its last',
    '            consistent state, --force takes it as it is',
    '  demote    make a primary a secondary (nothing may hold it: stop its server first);\n            --discard-my-data: after a split brain, give up this side\'s data: the next primary\n            that pairs with it copies everything over it',
    'Exit status 2 with a code on failure (split-brain, locked, not-found, ...).',
  ].join('\n'),
  options: { ...JSON_OPTION, force: { type: 'boolean' }, 'revert-to-consistent': { type: 'boolean' }, 'discard-my-data': { type: 'boolean' } },
  positionals: { min: 1, max: 2 },
  async run({ io, args, values }) {
    const action = args[0] as Action;
    if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError(`unknown replication action '${args[0]}' (use ${ACTIONS.join(', ')})`, 'replication');
    const dir = args[1] ?? (action === 'status' ? '.' : undefined);
    if (dir === undefined) throw new UsageError(`replication ${action} needs DIR`, 'replication');
    if (action !== 'promote' && (values.force === true || values['revert-to-consistent'] === true)) throw new UsageError('--force and --revert-to-consistent go with promote', 'replication');
    if (values.force === true && values['revert-to-consistent'] === true) throw new UsageError('give --force or --revert-to-consistent, not both', 'replication');
    if (action !== 'status' && values.json === true) throw new UsageError('--json goes with status', 'replication');
    if (action !== 'demote' && values['discard-my-data'] === true) throw new UsageError('--discard-my-data goes with demote', 'replication');
    switch (action) {
      case 'status':
        return status(io, dir, values.json === true);
      case 'freeze':
      case 'resume': {
        const st = await online(dir, { op: action === 'freeze' ? 'replication-freeze' : 'replication-resume' }, action);
        line(io.stdout, action === 'freeze' ? `Froze every session of ${dir}: writes go on recorded out of sync (policy run) or wait (policy block) until \`stratadisk replication resume ${dir}\` resynchronises them.` : `Resumed the sessions of ${dir}; they resynchronise what their secondaries lack (\`stratadisk replication status ${dir}\`).`);
        printSessions(io, st as OnlineStatus);
        return 0;
      }
      case 'promote':
        return promoteCmd(io, dir, values.force === true, values['revert-to-consistent'] === true);
      case 'demote':
        return demoteCmd(io, dir, values['discard-my-data'] === true);
    }
  },
};

interface SessionRow {
  name: string;
  state: string;
  mode?: string;
  group?: string;
  url?: string;
  lagWrites?: number;
  lagBytes?: number;
  outOfSyncBytes: number;
  resync?: { done: number; total: number } | null;
  lastError?: { code: string; message: string } | null;
}

interface OnlineStatus {
  role: string;
  generation: string;
  frozen?: boolean;
  freezeReason?: string | null;
  sessions?: SessionRow[];
}

/** Send `req` to the process holding `dir`; `not-found` with advice when none does. */
async function online(dir: string, req: ReplicationRequest, what: string): Promise<unknown> {
  try {
    const last = await requestControl(dir, req);
    return last.type === 'replication' ? last.status : null;
  } catch (e) {
    if (isNoControlSocket(e)) throw new StrataError('not-found', `No process holds ${dir}, so no session runs to ${what}. Start one with \`stratadisk replicate ${dir} URL\`.`);
    throw e;
  }
}

async function status(io: CliIo, dir: string, json: boolean): Promise<number> {
  let live: unknown;
  let held = true;
  try {
    const last = await requestControl(dir, { op: 'replication-status' });
    live = last.type === 'replication' ? last.status : null;
  } catch (e) {
    if (!isNoControlSocket(e)) throw e;
    held = false;
  }
  if (held) {
    const s = (live ?? null) as (OnlineStatus & { secondary?: { connected: boolean; session: string | null; mode: string | null; applied: number; durable: number; heldBytes: number; lastEnd: string | null }; consistent?: boolean; listening?: string }) | null;
    if (json) {
      line(io.stdout, JSON.stringify({ dir, held: true, ...(s ?? { role: 'none', sessions: [] }) }, null, 2));
      return 0;
    }
    if (!s) {
      line(io.stdout, `${dir}: held by a process that runs no replication session.`);
      return 0;
    }
    if (s.secondary) {
      const c = s.secondary;
      line(io.stdout, `${dir}: secondary (generation ${s.generation}${s.consistent ? '' : ', INCONSISTENT: a resync is under way or was interrupted'}), listening at ${s.listening}`);
      line(io.stdout, c.connected ? `  session ${c.session} (${c.mode}): applied ${c.applied}, durable ${c.durable}, held for a cut ${c.heldBytes} bytes` : `  no primary connected${c.lastEnd ? ` (last: ${c.lastEnd})` : ''}`);
      return 0;
    }
    line(io.stdout, `${dir}: ${s.role} (generation ${s.generation})${s.frozen ? `, FROZEN: ${s.freezeReason}` : ''}`);
    printSessions(io, s);
    return 0;
  }
  // nothing holds it: what the volume keeps
  const volume = await openVolume(dir, true);
  try {
    const role = (await RoleRecord.open(volume.ns)).state;
    const sessions: SessionRow[] = [];
    for (const name of await persistedSessions(volume.ns)) {
      let outOfSyncBytes = -1;
      try {
        const oos = await OutOfSync.open(new NodeDirNamespace(dir, { readOnly: true }), sessionFiles(name).oos, { size: volume.size, blockSize: volume.blockSize });
        outOfSyncBytes = oos.dirtyBytes;
        await oos.close();
      } catch {
        // damaged or unreadable: reported as unknown (-1); the next replicate resets it
      }
      sessions.push({ name, state: 'stopped', outOfSyncBytes });
    }
    const out = { dir, held: false, role: role.role, generation: role.gen.current, history: role.gen.history, consistent: role.consistent, resyncSnapshot: role.resyncSnapshot, peer: role.peer, sessions };
    if (json) {
      line(io.stdout, JSON.stringify(out, null, 2));
      return 0;
    }
    line(io.stdout, `${dir}: ${role.role === 'none' ? 'never replicated' : role.role} (generation ${role.gen.current}${role.role === 'secondary' && !role.consistent ? ', INCONSISTENT: a resync was interrupted' : ''}); no process holds it.`);
    for (const s of sessions) line(io.stdout, `  session ${s.name}: stopped, ${s.outOfSyncBytes < 0 ? 'bitmap unreadable (the next replicate resyncs everything)' : `${formatBytes(s.outOfSyncBytes)} (${s.outOfSyncBytes} bytes) out of sync`}`);
    return 0;
  } finally {
    await volume.close();
  }
}

function printSessions(io: CliIo, s: OnlineStatus | null): void {
  const rows = (s?.sessions ?? []).map((x) => [
    x.name,
    x.group ?? '',
    x.mode ?? '',
    x.state,
    x.lagWrites ?? 0,
    x.lagBytes ?? 0,
    x.outOfSyncBytes,
    x.resync ? `${x.resync.done}/${x.resync.total}` : '-',
    x.lastError ? `${x.lastError.code}: ${x.lastError.message}`.slice(0, 120) : '-',
  ]);
  if (rows.length === 0) return line(io.stdout, '  no session');
  line(io.stdout, table(['session', 'group', 'mode', 'state', 'lag writes', 'lag bytes', 'out of sync', 'resync blocks', 'last error'], rows));
}

async function promoteCmd(io: CliIo, dir: string, force: boolean, revert: boolean): Promise<number> {
  try {
    const st = (await requestControl(dir, { op: 'replication-promote', force, revertToConsistent: revert })) as { type: string; status?: { generation?: string; notes?: string[] } };
    line(io.stdout, `Promoted ${dir} to primary (new data generation ${st.status?.generation ?? '?'}); its serve-replica stopped.${(st.status?.notes ?? []).map((n) => ` Note: ${n}.`).join('')}`);
    return 0;
  } catch (e) {
    if (!isNoControlSocket(e)) throw e;
  }
  const volume = await openVolume(dir, false);
  try {
    const role = await RoleRecord.open(volume.ns);
    const change = await promote(volume, role, dir, { force, revertToConsistent: revert });
    line(io.stdout, `Promoted ${dir} to primary (new data generation ${change.after.gen.current}).${change.notes.map((n) => ` Note: ${n}.`).join('')} Serve it with \`stratadisk serve-nbd ${dir}\`.`);
    return 0;
  } finally {
    await volume.close();
  }
}

async function demoteCmd(io: CliIo, dir: string, discardMyData: boolean): Promise<number> {
  let held = false;
  try {
    await requestControl(dir, { op: 'replication-status' });
    held = true;
  } catch (e) {
    if (!isNoControlSocket(e)) throw e;
  }
  if (held) throw new StrataError('locked', `A process holds ${dir} (serve-nbd, replicate or serve-replica): stop it first; a primary is demoted while nothing writes to it.`);
  const volume = await openVolume(dir, false);
  try {
    const role = await RoleRecord.open(volume.ns);
    const change = await demote(role, dir, { discardMyData });
    if (discardMyData) {
      line(io.stdout, `Demoted ${dir} to secondary and gave up its data generation ${change.before.gen.current}: the next primary that pairs with it (\`stratadisk serve-replica ${dir} --port P\`, then \`stratadisk replicate PRIMARY URL\`) copies everything over it. Its current content stays readable until then.`);
      return 0;
    }
    line(io.stdout, `Demoted ${dir} to secondary (generation ${change.after.gen.current}). Serve it with \`stratadisk serve-replica ${dir} --port P\`; a primary whose data it lacks copies it, one that was written apart from it is refused as split brain.`);
    return 0;
  } finally {
    await volume.close();
  }
}
