/**
 * The replication of one primary volume inside one Node process (`stratadisk replicate`, or a
 * `serve-nbd` that was asked to replicate through its control socket): a ReplicationManager and
 * its sessions, each with its persistent out-of-sync bitmap and activity log in the volume's
 * namespace (`replication.<session>.oos.0/1`, `replication.<session>.al.0/1`), each dialing its
 * secondary's URL (./dial.ts) again on `resume`.
 *
 * A session's bitmap and activity log outlive the process: after a crash of the primary, the
 * extents its activity log held are marked out of sync before anything else is written
 * (PrimarySession.open), so the next `replicate` resyncs those, not the whole volume.
 *
 * Tokens live in this process's memory only (never in a file it writes, never in a message).
 */
import { readFile } from 'node:fs/promises';
import { StrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';
import type { Volume } from '../volume/volume.js';
import { ActivityLog } from './activity-log.js';
import { dialReplica } from './dial.js';
import { ReplicationManager, type ManagerEvent } from './manager.js';
import { OutOfSync } from './out-of-sync.js';
import { PrimarySession, type FreezePolicy, type SessionStatus } from './primary.js';
import type { Mode } from './protocol.js';
import { RoleRecord, type RoleState } from './roles.js';

export interface SessionSpec {
  /** URL of the secondary's `serve-replica` (tcp://, tls://, ws://, wss://) */
  url: string;
  /** default: derived from the URL (host-port) */
  name?: string;
  mode?: Mode;
  group?: string;
  policy?: FreezePolicy;
  /** a PEM file with the CA that signed the secondary's certificate (tls://, wss://) */
  caFile?: string;
  /** the shared token (from the environment or a 0600 file of the requester) */
  token: string;
}

export interface HostSessionStatus extends SessionStatus {
  group: string;
  url: string;
  policy: FreezePolicy;
  /** blocks the activity log held hot at an unclean end (resynced on connect) */
  recoveredBlocks: number;
}

export interface HostStatus {
  role: RoleState['role'];
  generation: string;
  frozen: boolean;
  freezeReason: string | null;
  sessions: HostSessionStatus[];
}

export interface HostOptions {
  /** log lines (connect, state changes, failures, freezes) */
  log?: (line: string) => void;
  /** manager events (progress bars) */
  onEvent?: (e: ManagerEvent) => void;
  /** tests: how long the primary waits for acknowledgements */
  ackTimeoutMs?: number;
}

const SESSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Files a session keeps in the volume's namespace. */
export function sessionFiles(name: string): { oos: string; al: string } {
  return { oos: `replication.${name}.oos`, al: `replication.${name}.al` };
}

/** Session names with a persisted out-of-sync bitmap in `ns`. */
export async function persistedSessions(ns: StoreNamespace): Promise<string[]> {
  const names = new Set<string>();
  for (const n of await ns.list()) {
    const m = /^replication\.(.+)\.oos\.[01]$/.exec(n);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

/** The default session name for a URL: its host and port (`127.0.0.1-7788`). */
export function defaultSessionName(url: string): string {
  let host = 'replica';
  let port = '';
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = u.port;
  } catch {
    // checked by the dialer
  }
  const name = `${host}${port ? `-${port}` : ''}`.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return (name || 'replica').slice(0, 64);
}

interface Entry {
  session: PrimarySession;
  spec: Required<Omit<SessionSpec, 'caFile' | 'name'>> & { caFile?: string; name: string };
  recoveredBlocks: number;
}

export class ReplicationHost {
  readonly manager = new ReplicationManager();
  private entries = new Map<string, Entry>();
  private closed = false;
  private readonly log: (line: string) => void;

  private constructor(
    readonly volume: Volume,
    readonly role: RoleRecord,
    private readonly options: HostOptions,
  ) {
    this.log = options.log ?? (() => {});
    this.manager.on((e) => {
      options.onEvent?.(e);
      if (e.type === 'state') this.log(`session ${e.session} (group ${e.group}): ${describeState(e.state)}`);
      else if (e.type === 'failed') this.log(`session ${e.session} (group ${e.group}) failed: ${e.code}: ${e.message}`);
      else if (e.type === 'frozen') this.log(`replication frozen (${e.sessions} session${e.sessions === 1 ? '' : 's'}, ${e.ms.toFixed(1)} ms): ${e.reason}. ${this.holdsWrites ? 'Writes wait (policy block)' : 'Writes go on, recorded out of sync'}; \`stratadisk replication resume\` resynchronises what the secondaries lack.`);
    });
  }

  static async open(volume: Volume, options: HostOptions = {}): Promise<ReplicationHost> {
    if (volume.readOnly) throw new StrataError('read-only', 'Replication needs the volume open for writing.');
    const role = await RoleRecord.open(volume.ns);
    if (role.state.role === 'secondary') {
      throw new StrataError('invalid-argument', 'This volume is a replication secondary: it takes writes only from its primary. Promote it first (`stratadisk replication promote DIR`) to replicate from it.');
    }
    return new ReplicationHost(volume, role, options);
  }

  get sessions(): PrimarySession[] {
    return [...this.entries.values()].map((e) => e.session);
  }

  /**
   * Open a session to `spec.url` and connect it. Resolves once the secondary accepted it (the
   * resync runs on: `session.synced()`). A refusal (split brain, a wrong token, nothing
   * listening) rejects and leaves no session behind (what was written meanwhile stays recorded
   * in its bitmap for the next attempt).
   */
  async add(spec: SessionSpec): Promise<PrimarySession> {
    if (this.closed) throw new StrataError('closed', 'Replication is shutting down.');
    const name = spec.name ?? defaultSessionName(spec.url);
    if (!SESSION_NAME.test(name)) throw new StrataError('invalid-argument', `Session name "${name.slice(0, 80)}" must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.`);
    if (this.entries.has(name)) throw new StrataError('exists', `Session ${name} already runs here (to ${this.entries.get(name)!.spec.url}). Give another --name.`);
    const full: Entry['spec'] = { url: spec.url, name, mode: spec.mode ?? 'sync', group: spec.group ?? 'default', policy: spec.policy ?? 'run', token: spec.token, ...(spec.caFile !== undefined ? { caFile: spec.caFile } : {}) };
    const ca = full.caFile !== undefined ? await readCa(full.caFile) : undefined;
    const geometry = { size: this.volume.size, blockSize: this.volume.blockSize };
    const files = sessionFiles(name);
    const fresh = !(await this.volume.ns.exists(`${files.oos}.0`)) && !(await this.volume.ns.exists(`${files.oos}.1`));
    const { oos, reset } = await OutOfSync.openOrReset(this.volume.ns, files.oos, geometry);
    if (reset) this.log(`session ${name}: its out-of-sync bitmap was damaged (${reset}); the whole volume is resynchronised.`);
    let al: ActivityLog;
    try {
      al = await ActivityLog.open(this.volume.ns, files.al, geometry);
    } catch (e) {
      if (!(e instanceof StrataError && e.code === 'corrupt')) {
        await oos.close();
        throw e;
      }
      this.log(`session ${name}: its activity log was damaged (${e.message}); the whole volume is resynchronised.`);
      await ActivityLog.remove(this.volume.ns, files.al);
      oos.markAll();
      await oos.persist();
      al = await ActivityLog.open(this.volume.ns, files.al, geometry);
    }
    let recoveredBlocks = 0;
    for (let i = 1; i < al.recovered.length; i += 2) recoveredBlocks += al.recovered[i]!;
    if (recoveredBlocks > 0) {
      this.log(`session ${name}: the last run ended without closing; the activity log held ${recoveredBlocks * this.volume.blockSize} bytes of recently written regions: those (and what the bitmap holds) are resynchronised, not the whole volume.`);
    }
    const session = await PrimarySession.open(this.volume, {
      name,
      mode: full.mode,
      policy: full.policy,
      oos,
      al,
      role: this.role,
      label: `session ${name}`,
      ...(this.options.ackTimeoutMs !== undefined ? { ackTimeoutMs: this.options.ackTimeoutMs } : {}),
    }).catch(async (e: unknown) => {
      await oos.close();
      await al.close();
      throw e;
    });
    const entry: Entry = { session, spec: full, recoveredBlocks };
    try {
      this.manager.add(session, full.group);
    } catch (e) {
      await session.close();
      throw e;
    }
    this.entries.set(name, entry);
    this.log(`session ${name}: connecting to ${full.url} (${full.mode}, group ${full.group}, policy ${full.policy})`);
    try {
      const link = await dialReplica(full.url, { token: full.token, ...(ca !== undefined ? { ca } : {}) });
      await session.connect(link);
    } catch (e) {
      this.manager.remove(session);
      this.entries.delete(name);
      const nothingMissed = session.oos.dirtyBlocks === 0;
      await session.close().catch(() => {});
      // a first attempt that never connected and missed nothing leaves no files behind
      if (fresh && nothingMissed && session.oos.dirtyBlocks === 0) {
        await OutOfSync.remove(this.volume.ns, files.oos).catch(() => {});
        await ActivityLog.remove(this.volume.ns, files.al).catch(() => {});
      }
      throw e;
    }
    return session;
  }

  /** Stop every stream at once (writes go on, recorded out of sync, or wait: policy block). */
  async freeze(reason = 'frozen by `stratadisk replication freeze`'): Promise<void> {
    await this.manager.freezeAll(reason);
  }

  /** Reconnect every session that is not streaming and resynchronise what it lacks. */
  async resume(): Promise<void> {
    const reason = this.manager.freezeReason;
    await this.manager.resume(async (s) => {
      const e = this.entries.get(s.name)!;
      const ca = e.spec.caFile !== undefined ? await readCa(e.spec.caFile) : undefined;
      this.log(`session ${s.name}: reconnecting to ${e.spec.url}`);
      return dialReplica(e.spec.url, { token: e.spec.token, ...(ca !== undefined ? { ca } : {}) });
    }).catch((e: unknown) => {
      // the manager clears its frozen flag before reconnecting: a session still stopped keeps it frozen
      if (this.sessions.some((s) => s.state !== 'syncing' && s.state !== 'replicating' && s.state !== 'connecting')) {
        this.manager.frozen = true;
        this.manager.freezeReason = `${reason ?? 'frozen'}; resume failed: ${(e as Error)?.message ?? e}`;
      }
      throw e;
    });
  }

  status(): HostStatus {
    const m = this.manager.status();
    const sessions: HostSessionStatus[] = [];
    for (const g of m.groups) {
      for (const s of g.sessions) {
        const e = this.entries.get(s.name);
        sessions.push({ ...s, group: g.name, url: e?.spec.url ?? '', policy: e?.spec.policy ?? 'run', recoveredBlocks: e?.recoveredBlocks ?? 0 });
      }
    }
    const r = this.role.state;
    return { role: r.role, generation: r.gen.current, frozen: m.frozen, freezeReason: m.freezeReason, sessions };
  }

  /** True when some session holds writes (policy block, not streaming): closing the server must release them first. */
  get holdsWrites(): boolean {
    return this.sessions.some((s) => s.policy === 'block' && s.state !== 'replicating' && s.state !== 'closed');
  }

  /**
   * End every session in order (the secondaries flush what they applied; what they had not
   * confirmed stays recorded out of sync). Returns a line per session saying what is out of sync.
   */
  async close(): Promise<string[]> {
    if (this.closed) return [];
    this.closed = true;
    const before = this.sessions;
    await this.manager.close();
    return before.map((s) => {
      const st = s.status();
      return st.outOfSyncBytes > 0
        ? `session ${s.name}: ${st.outOfSyncBytes} bytes out of sync (kept in its bitmap; the next \`stratadisk replicate\` resynchronises them)`
        : `session ${s.name}: the secondary holds everything`;
    });
  }
}

function describeState(state: string): string {
  switch (state) {
    case 'connecting':
      return 'connecting';
    case 'syncing':
      return 'connected; resync begins';
    case 'replicating':
      return 'in sync; replicating';
    case 'frozen':
      return 'frozen (stream stopped)';
    case 'refused':
      return 'refused';
    case 'closed':
      return 'closed';
    default:
      return state;
  }
}

async function readCa(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new StrataError('not-found', `Cannot read the CA certificate ${path}: ${(e as Error).message}`, { cause: e });
  }
}
