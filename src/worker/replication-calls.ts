/**
 * Replication as the worker engine runs it (`volume.replication` on the page,
 * ./client-replication.ts): primary sessions of the worker's volumes under one
 * ReplicationManager (so a freeze stops every group of this worker at once), a volume serving as
 * a secondary over a BroadcastChannel, role changes, and the links, made here in the worker
 * (BroadcastChannel and WebSocket exist in dedicated workers).
 *
 * What the page sends is checked here (targets, names, options). A target's token stays in this
 * worker's memory, for reconnecting on `resume`; it never appears in a status, event or error.
 */
import { releaseProxy } from 'comlink';
import { StrataError } from '../errors.js';
import type { Link } from '../consistency/link.js';
import type { Volume } from '../volume/volume.js';
import { ReplicationManager, type ManagerEvent } from '../replication/manager.js';
import { PrimarySession } from '../replication/primary.js';
import { Secondary } from '../replication/secondary.js';
import { RoleRecord } from '../replication/roles.js';
import { demote as demoteRole, promote as promoteRole } from '../replication/role-change.js';
import { OutOfSync } from '../replication/out-of-sync.js';
import { ActivityLog } from '../replication/activity-log.js';
import type { ToPrimary, ToSecondary } from '../replication/protocol.js';
import { authenticateLink, broadcastLink, connectReplicaWs } from '../replication/links/index.js';
import type { HandleId } from './protocol.js';
import type {
  LinkTiming,
  PromoteOptions,
  ReplicaSource,
  ReplicateOptions,
  ReplicationEvent,
  ReplicationSessionInfo,
  ReplicationTarget,
  VolumeReplicationStatus,
} from './replication-protocol.js';

type Listener = (e: ReplicationEvent) => void;

interface Managed {
  h: HandleId;
  session: PrimarySession;
  group: string;
  target: ReplicationTarget;
}

interface Serving {
  source: ReplicaSource;
  secondary: Secondary;
  stopped: boolean;
  /** the link of the connected primary */
  link: Link | null;
  /** settles when the accept loop has ended */
  loop: Promise<void>;
}

interface PerVolume {
  role: RoleRecord | null;
  serving: Serving | null;
  listeners: Set<Listener>;
}

/** session names: also file names in the volume's namespace (the CLI's rule, src/replication/node-host.ts) */
const SESSION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** names of the ends on a BroadcastChannel, and of groups */
const NAME = /^[A-Za-z0-9._:@-]{1,128}$/;

/**
 * Files a session keeps in the volume's namespace: the same names as the CLI's (node-host.ts
 * `sessionFiles`, not imported: that module is Node's), so a volume keeps its bitmap whichever
 * side replicates it.
 */
function sessionFiles(name: string): { oos: string; al: string } {
  return { oos: `replication.${name}.oos`, al: `replication.${name}.al` };
}

/** The default session name: the channel, or the server's host and port. */
function defaultName(t: ReplicationTarget): string {
  let raw = 'replica';
  if ('websocket' in t) {
    try {
      const u = new URL(t.websocket);
      raw = `${u.hostname.replace(/^\[|\]$/g, '')}${u.port ? `-${u.port}` : ''}`;
    } catch {
      // checked when the link is opened
    }
  } else raw = t.broadcast;
  const name = raw.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return (name || 'replica').slice(0, 64);
}

/** The replication part of one engine: every volume of the worker. */
export class EngineReplication {
  private manager: ReplicationManager | null = null;
  private readonly sessions = new Map<string, Managed>();
  private readonly volumes = new Map<HandleId, PerVolume>();

  /** `volumeOf(h)`: the writable volume of handle `h` (throws for a closed or read-only handle). */
  constructor(private readonly volumeOf: (h: HandleId) => Volume) {}

  /** True while volume `h` has sessions or serves: the engine refuses to move it (mirror). */
  active(h: HandleId): boolean {
    return this.volumes.get(h)?.serving != null || [...this.sessions.values()].some((m) => m.h === h);
  }

  /**
   * Refuse the page's own writes to a volume known here as a secondary (serving, or demoted):
   * they would differ from its primary without a new data generation, so the next pairing could
   * not see it. (A volume opened afresh is known once a replication call has read its role.)
   */
  checkWritable(h: HandleId): void {
    const p = this.volumes.get(h);
    if (!p) return;
    const role = p.serving ? p.serving.secondary.role : p.role;
    if (p.serving || role?.state.role === 'secondary') {
      throw new StrataError('read-only', 'This volume is a replication secondary: it takes writes only from its primary. Promote it (volume.replication.promote()) to write to it.');
    }
  }

  private per(h: HandleId): PerVolume {
    let p = this.volumes.get(h);
    if (!p) {
      p = { role: null, serving: null, listeners: new Set() };
      this.volumes.set(h, p);
    }
    return p;
  }

  private listen(h: HandleId, onEvent: Listener | undefined): void {
    if (typeof onEvent === 'function') this.per(h).listeners.add(onEvent);
  }

  private emit(h: HandleId, e: ReplicationEvent): void {
    for (const l of this.volumes.get(h)?.listeners ?? []) {
      // a page's proxy answers asynchronously; a page gone is no failure of ours
      void Promise.resolve()
        .then(() => l(e))
        .catch(() => {});
    }
  }

  private theManager(): ReplicationManager {
    if (!this.manager) {
      this.manager = new ReplicationManager();
      this.manager.on((e) => this.route(e));
    }
    return this.manager;
  }

  private route(e: ManagerEvent): void {
    if (e.type === 'frozen') {
      const hs = new Set([...this.sessions.values()].map((m) => m.h));
      for (const h of hs) this.emit(h, e);
      return;
    }
    const m = this.sessions.get(e.session);
    if (m) this.emit(m.h, e);
  }

  private async roleOf(h: HandleId, volume: Volume): Promise<RoleRecord> {
    const p = this.per(h);
    if (p.serving) return p.serving.secondary.role;
    p.role ??= await RoleRecord.open(volume.ns);
    return p.role;
  }

  // ---- primary ----

  async replicateTo(h: HandleId, target: ReplicationTarget, options: ReplicateOptions = {}, onEvent?: Listener): Promise<ReplicationSessionInfo> {
    const volume = this.volumeOf(h);
    const t = checkTarget(target);
    const o = checkReplicateOptions(options);
    const p = this.per(h);
    if (p.serving) throw new StrataError('locked', 'This volume serves as a replication secondary; stop serving (stop()) and promote it before replicating from it.');
    const name = o.name ?? defaultName(t);
    if (this.sessions.has(name)) throw new StrataError('exists', `A replication session named ${name} already runs in this worker; choose another name.`);
    const role = await this.roleOf(h, volume);
    if (role.state.role === 'secondary') {
      throw new StrataError('invalid-argument', 'This volume is a replication secondary: it takes writes only from its primary. Promote it first (volume.replication.promote()) to replicate from it.');
    }
    const { oos, al } = await openTracking(volume, name);
    let session: PrimarySession;
    try {
      session = await PrimarySession.open(volume, { name, mode: o.mode, policy: o.policy, role, oos, al, ackTimeoutMs: o.ackTimeoutMs, label: `session ${name}` });
    } catch (e) {
      await oos.close().catch(() => {});
      await al.close().catch(() => {});
      throw e;
    }
    const manager = this.theManager();
    try {
      manager.add(session, o.group);
    } catch (e) {
      await session.close();
      throw e;
    }
    const managed: Managed = { h, session, group: o.group, target: t };
    this.sessions.set(name, managed);
    this.listen(h, onEvent);
    try {
      await session.connect(await openPrimaryLink(t));
    } catch (e) {
      // nothing replicates: the page gets the reason and may try again
      await this.drop(managed);
      throw e;
    }
    return this.info(managed);
  }

  private async drop(m: Managed): Promise<void> {
    this.sessions.delete(m.session.name);
    this.manager?.remove(m.session);
    await m.session.close();
  }

  async synced(h: HandleId, name?: string): Promise<void> {
    this.volumeOf(h);
    const mine = [...this.sessions.values()].filter((m) => m.h === h && (name === undefined || m.session.name === name));
    if (name !== undefined && mine.length === 0) throw new StrataError('not-found', `This volume has no replication session named ${String(name)}.`);
    await Promise.all(mine.map((m) => m.session.synced()));
  }

  async freeze(h: HandleId, reason?: string): Promise<void> {
    this.volumeOf(h);
    if (!this.manager) return;
    await this.manager.freezeAll(typeof reason === 'string' && reason.length > 0 ? reason.slice(0, 256) : 'frozen by the application');
  }

  async resume(h: HandleId): Promise<void> {
    this.volumeOf(h);
    if (!this.manager) return;
    await this.manager.resume(async (s) => {
      const m = this.sessions.get(s.name);
      if (!m) throw new StrataError('not-found', `Session ${s.name} is not managed by this worker.`);
      return openPrimaryLink(m.target);
    });
  }

  // ---- secondary ----

  async serveReplica(h: HandleId, source: ReplicaSource, onEvent?: Listener): Promise<void> {
    const volume = this.volumeOf(h);
    const s = checkSource(source);
    const p = this.per(h);
    if (p.serving) throw new StrataError('exists', 'This volume already serves as a replication secondary.');
    if ([...this.sessions.values()].some((m) => m.h === h)) {
      throw new StrataError('locked', 'This volume replicates to a secondary; stop its sessions and demote it before serving it as a secondary.');
    }
    const secondary = await Secondary.open(volume, { label: `the secondary on ${describeSource(s)}` });
    // from now on the role record is the secondary's (one writer of the record per volume)
    p.role = null;
    this.listen(h, onEvent);
    const serving: Serving = { source: s, secondary, stopped: false, link: null, loop: Promise.resolve() };
    p.serving = serving;
    serving.loop = this.acceptLoop(h, serving);
    this.emit(h, { type: 'replica', state: 'listening', session: null, reason: null });
  }

  /** One primary at a time: wait on the channel for it, serve it until its link ends, wait again. */
  private async acceptLoop(h: HandleId, serving: Serving): Promise<void> {
    const s = serving.source;
    while (!serving.stopped) {
      let link: Link;
      try {
        // a bounded wait, so a stop takes effect: each attempt is a new session on the channel
        link = await broadcastLink(s.broadcast, { self: s.self ?? 'replica', peer: s.peer ?? 'primary', heartbeatMs: s.heartbeatMs, deadAfterMs: s.deadAfterMs, connectTimeoutMs: s.connectTimeoutMs ?? 10_000 });
        if (s.token !== undefined) link = await authenticateLink(link, { token: s.token, role: 'server' });
      } catch (e) {
        if (serving.stopped) return;
        if (e instanceof StrataError && e.code === 'timeout') continue;
        this.emit(h, { type: 'replica', state: 'disconnected', session: null, reason: (e as Error)?.message ?? String(e) });
        // a refused handshake or a failed channel: wait a little before listening again
        await new Promise((r) => setTimeout(r, 1000));
        continue;
      }
      if (serving.stopped) {
        link.close();
        return;
      }
      serving.link = link;
      serving.secondary.accept(link as Link<ToPrimary>);
      this.emit(h, { type: 'replica', state: 'connected', session: null, reason: null });
      await waitClosed(serving.secondary);
      serving.link = null;
      this.emit(h, { type: 'replica', state: 'disconnected', session: serving.secondary.status().session, reason: serving.secondary.lastEnd });
    }
  }

  private async stopServing(h: HandleId): Promise<void> {
    const p = this.volumes.get(h);
    const serving = p?.serving;
    if (!p || !serving) return;
    serving.stopped = true;
    p.serving = null;
    serving.link?.close();
    await serving.secondary.close();
    this.emit(h, { type: 'replica', state: 'stopped', session: null, reason: null });
  }

  // ---- roles, stop, status ----

  async stop(h: HandleId, name?: string): Promise<void> {
    this.volumeOf(h);
    const mine = [...this.sessions.values()].filter((m) => m.h === h && (name === undefined || m.session.name === name));
    if (name !== undefined && mine.length === 0) throw new StrataError('not-found', `This volume has no replication session named ${String(name)}.`);
    for (const m of mine) await this.drop(m);
    if (name === undefined) await this.stopServing(h);
  }

  /**
   * Make volume `h` a primary (failover): it stops serving, and its data starts a generation of
   * its own, so its old primary, coming back, is told it is stale (never merged).
   */
  async promote(h: HandleId, options: PromoteOptions = {}): Promise<VolumeReplicationStatus> {
    const volume = this.volumeOf(h);
    const role = await this.roleOf(h, volume);
    // checked before serving stops: a refused promotion leaves the secondary serving
    if (role.state.role === 'secondary' && !role.state.consistent && options.force !== true && options.revertToConsistent !== true) {
      const snap = role.state.resyncSnapshot;
      throw new StrataError(
        'invalid-argument',
        'This secondary is part way through a resync, so its blocks belong to no single point in time. ' +
          (snap ? `Promote with { revertToConsistent: true } to go back to its last consistent state (snapshot ${snap}), or ` : '') +
          'resume the primary so the resync completes, or promote with { force: true } to take it as it is.',
      );
    }
    await this.stopServing(h);
    this.per(h).role = role;
    await promoteRole(volume, role, 'This volume', { force: options.force === true, revertToConsistent: options.revertToConsistent === true });
    return this.status(h);
  }

  /** Make volume `h` a secondary: its sessions stop in order; it may then serve a new primary. */
  async demote(h: HandleId): Promise<VolumeReplicationStatus> {
    const volume = this.volumeOf(h);
    for (const m of [...this.sessions.values()].filter((x) => x.h === h)) await this.drop(m);
    await demoteRole(await this.roleOf(h, volume), 'This volume');
    return this.status(h);
  }

  async status(h: HandleId): Promise<VolumeReplicationStatus> {
    const volume = this.volumeOf(h);
    const role = (await this.roleOf(h, volume)).state;
    const serving = this.volumes.get(h)?.serving ?? null;
    const sec = serving?.secondary.status();
    return {
      role: role.role,
      generation: role.gen.current,
      consistent: role.consistent,
      frozen: this.manager?.frozen ?? false,
      freezeReason: this.manager?.freezeReason ?? null,
      sessions: [...this.sessions.values()].filter((m) => m.h === h).map((m) => this.info(m)),
      serving:
        serving && sec
          ? { source: describeSource(serving.source), connected: sec.connected, session: sec.session, mode: sec.mode, applied: sec.applied, durable: sec.durable, lastEnd: sec.lastEnd }
          : null,
    };
  }

  private info(m: Managed): ReplicationSessionInfo {
    return { ...m.session.status(), group: m.group, target: describeTarget(m.target) };
  }

  /** Volume `h` is closing: its sessions end in order, serving stops, its listeners are released. */
  async closeVolume(h: HandleId): Promise<void> {
    for (const m of [...this.sessions.values()].filter((x) => x.h === h)) await this.drop(m).catch(() => {});
    await this.stopServing(h).catch(() => {});
    const p = this.volumes.get(h);
    this.volumes.delete(h);
    for (const l of p?.listeners ?? []) {
      const release = (l as { [releaseProxy]?: unknown })[releaseProxy];
      if (typeof release === 'function') release.call(l);
    }
  }
}

/**
 * A session's out-of-sync bitmap and activity log, persisted in the volume's namespace (OPFS,
 * IndexedDB): after the page reloads, or its tab crashed, only what the bitmap holds and the
 * regions hot in the activity log are resynchronised. Damage to either resyncs everything.
 */
async function openTracking(volume: Volume, name: string): Promise<{ oos: OutOfSync; al: ActivityLog }> {
  const geometry = { size: volume.size, blockSize: volume.blockSize };
  const files = sessionFiles(name);
  const { oos } = await OutOfSync.openOrReset(volume.ns, files.oos, geometry);
  try {
    return { oos, al: await ActivityLog.open(volume.ns, files.al, geometry) };
  } catch (e) {
    if (!(e instanceof StrataError && e.code === 'corrupt')) {
      await oos.close();
      throw e;
    }
    await ActivityLog.remove(volume.ns, files.al);
    oos.markAll();
    await oos.persist();
    return { oos, al: await ActivityLog.open(volume.ns, files.al, geometry) };
  }
}

/** Resolves when the secondary's current connection has ended and settled. */
async function waitClosed(secondary: Secondary): Promise<void> {
  // Secondary.idle() settles when its connection ends; poll it cheaply by awaiting it in turn
  for (;;) {
    await secondary.idle();
    if (!secondary.status().connected) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function openPrimaryLink(t: ReplicationTarget): Promise<Link<ToSecondary>> {
  if ('websocket' in t) {
    return connectReplicaWs<ToSecondary>(t.websocket, { token: t.token, heartbeatMs: t.heartbeatMs, deadAfterMs: t.deadAfterMs, connectTimeoutMs: t.connectTimeoutMs }).catch((e: unknown) => {
      throw withOriginHint(e);
    });
  }
  let link = await broadcastLink<ToSecondary>(t.broadcast, { self: t.self ?? 'primary', peer: t.peer ?? 'replica', heartbeatMs: t.heartbeatMs, deadAfterMs: t.deadAfterMs, connectTimeoutMs: t.connectTimeoutMs });
  if (t.token !== undefined) link = await authenticateLink<ToSecondary>(link, { token: t.token, role: 'client' });
  return link;
}

/**
 * A browser says nothing of why a WebSocket did not open (nothing listening, a refused origin,
 * a certificate it does not trust all look alike): say what to check, with this page's origin.
 */
function withOriginHint(e: unknown): unknown {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  if (!(e instanceof StrataError) || e.code !== 'io' || typeof origin !== 'string' || origin === 'null') return e;
  return new StrataError('io', `${e.message.replace(/\.?$/, '.')} The browser does not say why: check that the replica server runs at that address, that its certificate is trusted (wss), and that it allows this page's origin ${origin} (\`listenReplicaWs({ origins })\`).`, { cause: e });
}

/** A target without its token, for status and messages. */
export function describeTarget(t: ReplicationTarget): string {
  if ('websocket' in t) return t.websocket;
  return `broadcast:${t.broadcast} (${t.self ?? 'primary'} -> ${t.peer ?? 'replica'})`;
}

function describeSource(s: ReplicaSource): string {
  return `broadcast:${s.broadcast} (${s.self ?? 'replica'} <- ${s.peer ?? 'primary'})`;
}

function bad(message: string): StrataError {
  return new StrataError('invalid-argument', message);
}

function checkName(v: unknown, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !NAME.test(v)) throw bad(`${what} is 1 to 128 letters, digits or . _ : @ -.`);
  return v;
}

function checkMs(v: unknown, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !(v > 0) || (!Number.isFinite(v) && what !== 'connectTimeoutMs')) throw bad(`${what} is a positive number of milliseconds.`);
  return v;
}

function checkTiming(o: Record<string, unknown>): LinkTiming {
  return { heartbeatMs: checkMs(o.heartbeatMs, 'heartbeatMs'), deadAfterMs: checkMs(o.deadAfterMs, 'deadAfterMs'), connectTimeoutMs: checkMs(o.connectTimeoutMs, 'connectTimeoutMs') };
}

function checkToken(v: unknown, required: boolean): string | undefined {
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length < 16) throw bad('The replication token is missing or shorter than 16 characters; both sides must hold the same one.');
  return v;
}

/** A target as the page sent it, checked (and copied: later changes on the page do not reach it). */
export function checkTarget(x: unknown): ReplicationTarget {
  if (typeof x !== 'object' || x === null) throw bad('A replication target is { broadcast: channel } or { websocket: url, token }.');
  const o = x as Record<string, unknown>;
  if (typeof o.websocket === 'string') {
    if (!/^wss?:\/\//.test(o.websocket)) throw bad('A WebSocket target is a ws:// (loopback) or wss:// URL.');
    return { websocket: o.websocket, token: checkToken(o.token, true)!, ...checkTiming(o) };
  }
  if (typeof o.broadcast === 'string' && o.broadcast.length > 0 && o.broadcast.length <= 256) {
    return { broadcast: o.broadcast, self: checkName(o.self, 'self'), peer: checkName(o.peer, 'peer'), token: checkToken(o.token, false), ...checkTiming(o) };
  }
  throw bad('A replication target is { broadcast: channel } (another tab) or { websocket: url, token } (a replica server).');
}

export function checkSource(x: unknown): ReplicaSource {
  if (typeof x === 'object' && x !== null && typeof (x as { websocket?: unknown }).websocket === 'string') {
    throw new StrataError('unsupported', 'A page cannot accept WebSocket connections: serve the replica from Node (`stratadisk serve-replica`), or use { broadcast: channel } between tabs.');
  }
  const t = checkTarget(x);
  if (!('broadcast' in t)) throw bad('A page serves a replica on { broadcast: channel }.');
  return t;
}

function checkReplicateOptions(x: unknown): { name?: string; mode: 'sync' | 'async'; group: string; policy: 'run' | 'block'; ackTimeoutMs?: number } {
  const o = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
  const mode = o.mode ?? 'sync';
  if (mode !== 'sync' && mode !== 'async') throw bad("mode is 'sync' or 'async'.");
  const policy = o.policy ?? 'run';
  if (policy !== 'run' && policy !== 'block') throw bad("policy is 'run' or 'block'.");
  if (o.name !== undefined && (typeof o.name !== 'string' || !SESSION_NAME.test(o.name))) throw bad('A session name is 1 to 64 letters, digits, . _ or -, starting with a letter or digit (it names files in the volume).');
  return { name: o.name as string | undefined, mode, group: checkName(o.group, 'group') ?? 'default', policy, ackTimeoutMs: checkMs(o.ackTimeoutMs, 'ackTimeoutMs') };
}
