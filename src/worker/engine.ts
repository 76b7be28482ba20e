/**
 * The worker side: a table of open volumes and snapshot views by handle id, behind the methods
 * of {@link EngineApi}. One engine (one worker) serves any number of volumes. Comlink exposes
 * it (host.ts); nothing here knows about messages except `transfer` for the bytes of `read`.
 *
 * Order: each method reaches the Volume synchronously (no `await` before the Volume call), so
 * calls run in the order their messages arrive, and the Volume's FIFO lock keeps them in that
 * order: a `flush` that resolves covers every write sent before it.
 */
import { releaseProxy, transfer } from 'comlink';
import { StrataError } from '../errors.js';
import { checkRange, type StoreNamespace } from '../store/store.js';
import { Volume, type SnapshotInfo, type VolumeInfo, type VolumeReader } from '../volume/volume.js';
import type { CheckReport } from '../volume/check.js';
import type { Extent } from '../volume/map.js';
import { browserBackends, type Backend, type BackendTable } from './backends.js';
import { mirror } from '../jobs/mirror.js';
import type { Job, JobInfo } from '../jobs/job.js';
import type {
  BackendName,
  BackendSpec,
  CreateOptions,
  EngineApi,
  HandleId,
  EnableJournalOptions,
  LogPoint,
  LogRecordPage,
  OpId,
  OpenOptions,
  OpenedHandle,
  ProgressEvent,
  RestoreOptions,
  StorageReport,
  StreamOptions,
} from './protocol.js';
import { StreamJob } from '../jobs/stream.js';
import { BASE_SNAPSHOT, disableJournal, enableJournal, restoreTo, type Journal, type JournalStatus, type Mark, type RestoreReport } from '../journal/index.js';
import { EngineReplication } from './replication-calls.js';
import type { PromoteOptions, ReplicaSource, ReplicateOptions, ReplicationEvent, ReplicationSessionInfo, ReplicationTarget, VolumeReplicationStatus } from './replication-protocol.js';
import { MAX_RECORDS_PER_PAGE, checkLabel, checkLogPath, checkRecordRange, closeNamespace, noJournal, openLogged, toPoint } from './journal-calls.js';

type Entry =
  | {
      kind: 'volume';
      volume: Volume;
      ns: StoreNamespace;
      key: string;
      views: Set<HandleId>;
      backend: Backend;
      /** the write log, when the volume keeps one (closed with the volume) */
      journal: Journal | null;
      /** the log's namespace when it is not the volume's own */
      logNs: StoreNamespace | null;
      /** handles of views of the log (a subset of views; closed when the log is disabled) */
      logViews: Set<HandleId>;
      /** while a mirror job runs: settles once the handle has switched over (or the job failed) */
      moving?: Promise<unknown>;
      /** volumes this handle switched away from (still read by snapshot views opened before) */
      retired?: { volume: Volume; ns: StoreNamespace }[];
    }
  | { kind: 'snapshot'; reader: VolumeReader; parent: HandleId; name: string };
// (views of the write log are 'snapshot' entries too: a reader closed with its volume)

export interface EngineOptions {
  /** Backends by name; default: memory, opfs, idb (Node's entry adds node-dir). */
  backends?: BackendTable;
}

export class Engine implements EngineApi {
  private readonly backends: BackendTable;
  private readonly handles = new Map<HandleId, Entry>();
  private readonly ops = new Map<OpId, AbortController>();
  private readonly jobs = new Map<OpId, Job>();
  private nextHandle = 1;
  /** replication sessions of this worker's volumes (./replication-calls.ts) */
  private readonly replication = new EngineReplication((h) => this.writable(h));

  constructor(options: EngineOptions = {}) {
    this.backends = options.backends ?? browserBackends();
  }

  // ---- volumes ----

  async createVolume(spec: BackendSpec, options: CreateOptions): Promise<OpenedHandle> {
    const backend = this.backend(spec);
    const ns = await backend.open(spec.path, { create: true, readOnly: false });
    let volume: Volume;
    try {
      volume = options.backing !== undefined
        ? await Volume.createFromImage(ns, options.backing, { size: options.size || undefined, blockSize: options.blockSize })
        : await Volume.create(ns, { size: options.size, blockSize: options.blockSize });
    } catch (e) {
      await closeNamespace(ns);
      throw e;
    }
    return this.add(spec, backend, ns, { volume, journal: null, logNs: null });
  }

  /**
   * Open an existing volume. Writers go through openJournaled: a volume that keeps a write log
   * opens with it attached (its writes are logged), and a plain one opens as before.
   */
  async openVolume(spec: BackendSpec, options: OpenOptions = {}): Promise<OpenedHandle> {
    const backend = this.backend(spec);
    const readOnly = options.readOnly ?? false;
    const ns = await backend.open(spec.path, { create: false, readOnly });
    let logged;
    try {
      logged = await openLogged(ns, backend, readOnly);
    } catch (e) {
      await closeNamespace(ns);
      throw e;
    }
    return this.add(spec, backend, ns, logged);
  }

  /**
   * Remove every store of the volume at `spec`, then the namespace itself where the backend can.
   * Idempotent: a missing volume is not an error. Throws `locked` while any handle (of this worker)
   * has it open, or while another writer holds its lock.
   */
  async deleteVolume(spec: BackendSpec): Promise<void> {
    const backend = this.backend(spec);
    const key = specKey(spec);
    for (const e of this.handles.values()) {
      if (e.kind === 'volume' && e.key === key) throw new StrataError('locked', `The volume at ${spec.backend}:${spec.path} is open in this worker; close it before deleting it.`);
    }
    let ns: StoreNamespace;
    try {
      ns = await backend.open(spec.path, { create: false, readOnly: false });
    } catch (e) {
      if (e instanceof StrataError && e.code === 'not-found') return;
      throw e;
    }
    try {
      const lock = await ns.lock?.();
      try {
        for (const name of await ns.list()) await ns.delete(name);
        await ns.sync();
      } finally {
        await lock?.release();
      }
    } finally {
      await closeNamespace(ns);
    }
    await backend.remove?.(spec.path);
  }

  async listVolumes(backend: BackendName, parentPath?: string): Promise<string[]> {
    const b = this.backend({ backend, path: '' });
    if (!b.list) throw new StrataError('unsupported', `Listing volumes is not supported for the ${backend} backend; keep your own list of paths.`);
    return b.list(parentPath);
  }

  // ---- I/O ----

  read(h: HandleId, offset: number, length: number): Promise<Uint8Array> {
    return settle(() => this.readNow(h, offset, length));
  }

  private readNow(h: HandleId, offset: number, length: number): Promise<Uint8Array> {
    const reader = this.reader(h);
    // Validate before allocating: `length` comes from the other side.
    checkRange(offset, length);
    if (offset + length > reader.size) {
      throw new StrataError('out-of-range', `The range ${offset}+${length} is past the end of the volume (${reader.size} bytes).`);
    }
    const bytes = new Uint8Array(length);
    return reader.readInto(offset, bytes).then(() => transfer(bytes, [bytes.buffer]));
  }

  write(h: HandleId, offset: number, data: Uint8Array): Promise<void> {
    return this.writing(h, (v) => v.write(offset, data));
  }

  writeZeroes(h: HandleId, offset: number, length: number): Promise<void> {
    return this.writing(h, (v) => v.writeZeroes(offset, length));
  }

  /** A write refused because a mirror switched the handle over is retried on the copy. */
  private writing(h: HandleId, fn: (v: Volume) => Promise<void>): Promise<void> {
    const first = this.handles.get(h);
    const v0 = first?.kind === 'volume' ? first.volume : undefined;
    return settle(() => {
      // a replication secondary takes writes only from its primary
      this.replication.checkWritable(h);
      return fn(this.volume(h));
    }).catch(async (e) => {
      const entry = this.handles.get(h);
      if (!(e instanceof StrataError && e.code === 'closed') || entry?.kind !== 'volume') throw e;
      if (entry.volume === v0 && entry.moving) await entry.moving.catch(() => {});
      if (entry.volume === v0) throw e;
      return fn(entry.volume);
    });
  }

  /**
   * Copy volume `h` into `target` (another backend or path) while it is used, then switch the
   * handle over: later reads and writes of `h` go to the copy. `onProgress` (a Comlink.proxy)
   * gets the job's info; `op` names it for {@link cancel}. Resolves with the final job info.
   */
  async mirror(h: HandleId, target: BackendSpec, options: { flatten?: boolean; rateLimit?: number } = {}, op?: OpId, onProgress?: (info: JobInfo) => void): Promise<JobInfo> {
    const entry = this.volumeEntry(h);
    if (entry.moving) throw new StrataError('locked', 'This volume is already being mirrored.');
    if (this.replication.active(h)) throw new StrataError('locked', 'This volume replicates (or serves as a replica); stop replication before mirroring it.');
    if (entry.journal) throw new StrataError('unsupported', 'This volume keeps a write log, which a mirror would leave behind; disable the log first (disableJournal) or copy the volume closed.');
    const backend = this.backend(target);
    const ns = await backend.open(target.path, { create: true, readOnly: false });
    let job;
    try {
      job = mirror(entry.volume, ns, { flatten: options.flatten === true, rateLimit: options.rateLimit, targetLabel: `${target.backend}:${target.path.split('#')[0]}` });
    } catch (e) {
      await closeNamespace(ns);
      throw e;
    }
    const ctrl = new AbortController();
    ctrl.signal.addEventListener('abort', () => job.cancel());
    if (op !== undefined) {
      this.ops.set(op, ctrl);
      this.jobs.set(op, job);
    }
    const off = onProgress ? job.on((ev) => void Promise.resolve(onProgress(ev.info)).catch(() => {})) : () => {};
    const moved = job.done.then(() => {
      (entry.retired ??= []).push({ volume: entry.volume, ns: entry.ns });
      entry.volume = job.target!;
      entry.ns = ns;
      entry.key = specKey(target);
    });
    entry.moving = moved;
    try {
      await moved;
      return job.info();
    } catch (e) {
      await closeNamespace(ns);
      throw e;
    } finally {
      entry.moving = undefined;
      off();
      if (op !== undefined) {
        this.ops.delete(op);
        this.jobs.delete(op);
      }
      const release = (onProgress as { [releaseProxy]?: unknown } | undefined)?.[releaseProxy];
      if (typeof release === 'function') release.call(onProgress);
    }
  }

  /** Pause or resume the running job `op` (a mirror or a stream). Resolves true when there was one. */
  async controlJob(op: OpId, action: 'pause' | 'resume'): Promise<boolean> {
    const job = this.jobs.get(op);
    if (!job) return false;
    if (action === 'pause') job.pause();
    else job.resume();
    return true;
  }

  flush(h: HandleId): Promise<void> {
    return settle(() => this.volume(h).flush());
  }

  // ---- snapshots ----

  snapshot(h: HandleId, name: string): Promise<SnapshotInfo> {
    return settle(() => this.volume(h).snapshot(name));
  }

  async snapshots(h: HandleId): Promise<SnapshotInfo[]> {
    return this.volume(h).snapshots();
  }

  async openSnapshot(h: HandleId, name: string): Promise<OpenedHandle> {
    const entry = this.volumeEntry(h);
    const reader = entry.volume.openSnapshot(name);
    const handle = this.nextHandle++;
    this.handles.set(handle, { kind: 'snapshot', reader, parent: h, name });
    entry.views.add(handle);
    return { kind: 'snapshot', handle, size: reader.size, blockSize: reader.blockSize, readOnly: true, name, volume: h };
  }

  revert(h: HandleId, name: string): Promise<void> {
    return settle(() => {
      this.replication.checkWritable(h);
      return this.volume(h).revert(name);
    });
  }

  deleteSnapshot(h: HandleId, name: string): Promise<void> {
    return settle(() => {
      const entry = this.volumeEntry(h);
      if (entry.journal && name === BASE_SNAPSHOT) {
        throw new StrataError('locked', `Snapshot ${name} is the base of the write log: every point of the log reads through it. Disable the log first (disableJournal); it stays as an ordinary snapshot.`);
      }
      return entry.volume.deleteSnapshot(name);
    });
  }

  // ---- write log (src/journal) ----

  /**
   * Start a write log for volume `h` (open for writing). `logPath` keeps it in another namespace
   * of the volume's backend; by default it lives with the volume's stores.
   */
  async enableJournal(h: HandleId, options: EnableJournalOptions = {}): Promise<JournalStatus> {
    const entry = this.volumeEntry(h);
    const where = checkLogPath(options.logPath);
    if (entry.journal) throw new StrataError('exists', 'This volume already keeps a write log.');
    const logNs = where === '' ? null : await entry.backend.open(where, { create: true, readOnly: false });
    try {
      entry.journal = await enableJournal(entry.volume, logNs ?? entry.ns, where);
      entry.logNs = logNs;
    } catch (e) {
      if (logNs) await closeNamespace(logNs).catch(() => {});
      throw e;
    }
    return entry.journal.status();
  }

  /** Stop logging volume `h` and delete its log; views of the log close. */
  async disableJournal(h: HandleId): Promise<void> {
    const entry = this.volumeEntry(h);
    if (!entry.journal) throw noJournal(h);
    const journal = entry.journal;
    const logNs = entry.logNs ?? entry.ns;
    this.dropLogViews(entry);
    await disableJournal(entry.volume, journal, logNs);
    entry.journal = null;
    if (entry.logNs) {
      await closeNamespace(entry.logNs);
      entry.logNs = null;
    }
  }

  async journalStatus(h: HandleId): Promise<JournalStatus | null> {
    return this.volumeEntry(h).journal?.status() ?? null;
  }

  mark(h: HandleId, label: string): Promise<Mark> {
    return settle(() => this.journal(h).mark(checkLabel(label)));
  }

  async marks(h: HandleId): Promise<Mark[]> {
    return this.journal(h).marks();
  }

  /** A bounded page of the log's records in (after, upTo], for a page's time slider. */
  async journalRecords(h: HandleId, after: number, upTo: number, limit: number = MAX_RECORDS_PER_PAGE): Promise<LogRecordPage> {
    const journal = this.journal(h);
    const { after: a, upTo: u, limit: n } = checkRecordRange(after, upTo, limit);
    const all = journal.recordsBetween(a, u);
    return { records: all.slice(0, n), more: all.length > n, oldest: journal.oldest, lastFlush: journal.status().lastFlush };
  }

  /** A read-only view of volume `h` at a point of its log; closed with the volume (or the log). */
  async openView(h: HandleId, point: LogPoint): Promise<OpenedHandle> {
    const entry = this.volumeEntry(h);
    const journal = this.journal(h);
    const p = toPoint(point);
    const seq = journal.resolve(p);
    const reader = journal.view({ seq });
    const handle = this.nextHandle++;
    this.handles.set(handle, { kind: 'snapshot', reader, parent: h, name: `seq:${seq}` });
    entry.views.add(handle);
    entry.logViews.add(handle);
    return { kind: 'view', handle, size: reader.size, blockSize: reader.blockSize, readOnly: true, seq, volume: h };
  }

  /**
   * Roll volume `h` back (or forward) to a point of its log: only to a mark unless `force`.
   * Progress in blocks rewritten; `op` cancels it like a check (the volume is then part way;
   * the report of a finished restore names the undo mark).
   */
  async restore(h: HandleId, point: LogPoint, options: RestoreOptions = {}, op?: OpId, onProgress?: (e: ProgressEvent) => void): Promise<RestoreReport> {
    const journal = this.journal(h);
    const p = toPoint(point);
    return this.runOp(op, onProgress, (signal, progress) => restoreTo(journal, p, { force: options.force === true, signal, onProgress: onProgress ? progress : undefined }));
  }

  private journal(h: HandleId): Journal {
    const j = this.volumeEntry(h).journal;
    if (!j) throw noJournal(h);
    return j;
  }

  private dropLogViews(entry: Extract<Entry, { kind: 'volume' }>): void {
    for (const v of entry.logViews) {
      this.handles.delete(v);
      entry.views.delete(v);
    }
    entry.logViews.clear();
  }

  // ---- replication (./replication-calls.ts) ----

  replicateTo(h: HandleId, target: ReplicationTarget, options?: ReplicateOptions, onEvent?: (e: ReplicationEvent) => void): Promise<ReplicationSessionInfo> {
    return settle(() => this.replication.replicateTo(h, target, options, onEvent));
  }

  serveReplica(h: HandleId, source: ReplicaSource, onEvent?: (e: ReplicationEvent) => void): Promise<void> {
    return settle(() => this.replication.serveReplica(h, source, onEvent));
  }

  replicationStatus(h: HandleId): Promise<VolumeReplicationStatus> {
    return settle(() => this.replication.status(h));
  }

  replicationSynced(h: HandleId, name?: string): Promise<void> {
    return settle(() => this.replication.synced(h, name));
  }

  replicationFreeze(h: HandleId, reason?: string): Promise<void> {
    return settle(() => this.replication.freeze(h, reason));
  }

  replicationResume(h: HandleId): Promise<void> {
    return settle(() => this.replication.resume(h));
  }

  replicationStop(h: HandleId, name?: string): Promise<void> {
    return settle(() => this.replication.stop(h, name));
  }

  replicationPromote(h: HandleId, options?: PromoteOptions): Promise<VolumeReplicationStatus> {
    return settle(() => this.replication.promote(h, options));
  }

  replicationDemote(h: HandleId): Promise<VolumeReplicationStatus> {
    return settle(() => this.replication.demote(h));
  }

  /** The volume of `h`, open for writing (replication needs a writer). */
  private writable(h: HandleId): Volume {
    const v = this.volume(h);
    if (v.readOnly) throw new StrataError('read-only', 'Replication needs the volume open for writing; this handle is read-only.');
    return v;
  }

  // ---- inspection ----

  map(h: HandleId): Promise<Extent[]> {
    return settle(() => this.reader(h).map());
  }

  async info(h: HandleId): Promise<VolumeInfo> {
    return this.volume(h).info();
  }

  /**
   * Verify every data block. `onProgress` (a Comlink.proxy on the caller's side) is called after
   * each batch without waiting for it; `op` names the operation for {@link cancel}.
   */
  async check(h: HandleId, op?: OpId, onProgress?: (e: ProgressEvent) => void): Promise<CheckReport> {
    const volume = this.volume(h);
    return this.runOp(op, onProgress, (signal, progress) => volume.check(onProgress ? progress : undefined, signal));
  }

  /** Run a stream job on a copy-on-read volume (progress in bytes); `op` cancels it like a check. */
  async stream(h: HandleId, op?: OpId, onProgress?: (e: ProgressEvent) => void, options: StreamOptions = {}): Promise<void> {
    const volume = this.volume(h);
    return this.runOp(op, onProgress, async (signal, progress) => {
      const job = new StreamJob(volume, { signal, rateLimit: options.rateLimit });
      job.on((e) => progress(e.info.progress.done, e.info.progress.total));
      // Pausable like a mirror: controlJob(op, 'pause' | 'resume').
      if (op !== undefined) this.jobs.set(op, job);
      try {
        await job.start().done;
      } finally {
        if (op !== undefined && this.jobs.get(op) === job) this.jobs.delete(op);
      }
    });
  }

  /** A cancellable operation named `op`, reporting to `onProgress` (a Comlink.proxy on the caller's side). */
  private async runOp<T>(op: OpId | undefined, onProgress: ((e: ProgressEvent) => void) | undefined, fn: (signal: AbortSignal, progress: (done: number, total: number) => void) => Promise<T>): Promise<T> {
    const ctrl = new AbortController();
    if (op !== undefined) {
      if (this.ops.has(op)) throw new StrataError('invalid-argument', `Operation id ${op} is already in use.`);
      this.ops.set(op, ctrl);
    }
    // Progress is sent without waiting for each answer (the operation never stalls on the page),
    // but the last one is awaited before the result, so no progress event arrives after it.
    let delivered: Promise<unknown> = Promise.resolve();
    const progress = (done: number, total: number) => {
      if (onProgress) delivered = Promise.resolve(onProgress({ done, total })).catch(() => {});
    };
    try {
      const result = await fn(ctrl.signal, progress);
      await delivered;
      return result;
    } finally {
      if (op !== undefined) this.ops.delete(op);
      // A Comlink proxy holds a port open on the caller's side until released.
      const release = (onProgress as { [releaseProxy]?: unknown } | undefined)?.[releaseProxy];
      if (typeof release === 'function') release.call(onProgress);
    }
  }

  reset(h: HandleId): Promise<void> {
    return settle(() => this.volume(h).reset());
  }

  refreshImage(h: HandleId, url?: string): Promise<boolean> {
    return settle(() => {
      const remote = this.volume(h).remote;
      if (!remote) throw new StrataError('unsupported', 'This volume has no remote image; only volumes created with a backing URL do.');
      return remote.refresh(url);
    });
  }

  /** Abort the running operation `op`. Resolves true when there was one to abort. */
  async cancel(op: OpId): Promise<boolean> {
    const ctrl = this.ops.get(op);
    if (!ctrl) return false;
    ctrl.abort();
    return true;
  }

  /** Close a volume (flushing it, and closing its snapshot views) or a snapshot view. Closing twice is a no-op. */
  async close(h: HandleId): Promise<void> {
    const entry = this.handles.get(h);
    if (!entry) return;
    this.handles.delete(h);
    if (entry.kind === 'snapshot') {
      const parent = this.handles.get(entry.parent);
      if (parent?.kind === 'volume') {
        parent.views.delete(h);
        parent.logViews.delete(h);
      }
      return;
    }
    // sessions end in order and detach from the volume before it closes
    await this.replication.closeVolume(h);
    for (const v of entry.views) this.handles.delete(v);
    for (const r of entry.retired ?? []) {
      await r.volume.close().catch(() => {});
      await closeNamespace(r.ns).catch(() => {});
    }
    try {
      // closing the volume closes its write log
      await entry.volume.close();
    } finally {
      await closeNamespace(entry.ns);
      if (entry.logNs) await closeNamespace(entry.logNs);
    }
  }

  /** Close everything this engine has open. */
  async closeAll(): Promise<void> {
    const errors: unknown[] = [];
    for (const [h, e] of [...this.handles]) {
      if (e.kind !== 'volume') continue;
      try {
        await this.close(h);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
  }

  // ---- storage ----

  async storage(): Promise<StorageReport> {
    const storage = browserStorage();
    if (!storage?.estimate) return { usage: 0, quota: 0, persisted: false };
    const est = await storage.estimate();
    const persisted = typeof storage.persisted === 'function' ? await storage.persisted() : false;
    return { usage: est.usage ?? 0, quota: est.quota ?? 0, persisted };
  }

  /**
   * Ask for persistent storage. `navigator.storage.persist` exists only on pages (Window), so in a
   * worker this reports the current state: call `persist()` on the page, after a user gesture.
   */
  async persist(): Promise<boolean> {
    const storage = browserStorage();
    if (!storage) return false;
    const s = storage as StorageManager & { persist?: () => Promise<boolean> };
    if (typeof s.persist === 'function') return s.persist();
    return typeof storage.persisted === 'function' ? storage.persisted() : false;
  }

  // ---- table ----

  private backend(spec: BackendSpec): Backend {
    if (typeof spec !== 'object' || spec === null || typeof spec.path !== 'string') {
      throw new StrataError('invalid-argument', 'A backend spec is { backend, path } with a string path.');
    }
    const b = this.backends[spec.backend];
    if (!b) {
      const known = Object.keys(this.backends).join(', ');
      throw new StrataError('unsupported', `Backend "${String(spec.backend)}" is not available in this worker (available: ${known}).${spec.backend === 'node-dir' ? ' node-dir runs only under Node worker_threads.' : ''}`);
    }
    if (!b.isAvailable()) throw new StrataError('unsupported', `Backend "${spec.backend}" is not available in this context (OPFS sync access needs a dedicated worker; IndexedDB needs a browser).`);
    return b;
  }

  private add(spec: BackendSpec, backend: Backend, ns: StoreNamespace, logged: { volume: Volume; journal: Journal | null; logNs: StoreNamespace | null }): OpenedHandle {
    const { volume, journal, logNs } = logged;
    const handle = this.nextHandle++;
    this.handles.set(handle, { kind: 'volume', volume, ns, key: specKey(spec), views: new Set(), backend, journal, logNs, logViews: new Set() });
    return { kind: 'volume', handle, size: volume.size, blockSize: volume.blockSize, readOnly: volume.readOnly };
  }

  private entry(h: HandleId): Entry {
    const e = this.handles.get(h);
    if (!e) throw new StrataError('closed', `Handle ${h} is closed (or was never opened in this worker); open the volume again.`);
    return e;
  }

  private volumeEntry(h: HandleId): Extract<Entry, { kind: 'volume' }> {
    const e = this.entry(h);
    if (e.kind !== 'volume') throw new StrataError('invalid-argument', `Handle ${h} is a snapshot view, not a volume.`);
    return e;
  }

  private volume(h: HandleId): Volume {
    return this.volumeEntry(h).volume;
  }

  private reader(h: HandleId): VolumeReader {
    const e = this.entry(h);
    return e.kind === 'volume' ? e.volume : e.reader;
  }
}

/** Run `fn` now (keeping message order) and turn a synchronous throw into a rejection. */
function settle<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return fn();
  } catch (e) {
    return Promise.reject(e);
  }
}

function specKey(spec: BackendSpec): string {
  return `${spec.backend}:${spec.path}`;
}


function browserStorage(): StorageManager | undefined {
  const nav = (globalThis as { navigator?: Navigator }).navigator;
  return nav?.storage;
}
