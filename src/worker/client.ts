/**
 * `stratadisk/client`: the page side of the worker host. Everything is async; bytes move by
 * transfer; errors arrive as StrataError with the worker's `code`.
 *
 * ```ts
 * const worker = new Worker(new URL('stratadisk/worker', import.meta.url), { type: 'module' });
 * const client = StrataClient.connect(worker);
 * const vol = await client.createVolume({ backend: 'opfs', path: 'disks/a' }, { size: 1 << 30 });
 * await vol.write(0, bytes); // bytes.buffer is transferred (detached) when bytes spans it
 * await vol.flush();
 * ```
 */
import { proxy, releaseProxy, wrap, type Endpoint, type Remote } from 'comlink';
import { StrataError } from '../errors.js';
import type { CheckReport } from '../volume/check.js';
import type { JobInfo } from '../jobs/job.js';
import type { Extent } from '../volume/map.js';
import type { SnapshotInfo, VolumeInfo } from '../volume/volume.js';
import { transfer } from 'comlink';
import { registerErrorTransfer } from './errors.js';
import { guardedRemote, Liveness, type ConnectOptions } from './liveness.js';
import { isNodeMessageTarget, nodeEndpoint, type NodeMessageTarget } from './node-endpoint.js';
import type { BackendSpec, EngineApi, HandleId, HostMessage, OpenedHandle, ProgressEvent, StorageReport } from './protocol.js';
import { RemoteJournal, type RemotePointView } from './client-journal.js';
import { RemoteReplication } from './client-replication.js';

export type { BackendSpec, BackendName, ProgressEvent, StorageReport } from './protocol.js';
export type { Extent } from '../volume/map.js';
export type { SnapshotInfo, VolumeInfo } from '../volume/volume.js';
export type { CheckReport, CheckProblem } from '../volume/check.js';
export { StrataError, isStrataError, type ErrorCode } from '../errors.js';
export type { ConnectOptions } from './liveness.js';
export type { JournalStatus, Mark, Point, RestoreReport } from '../journal/index.js';
export type { EnableJournalOptions, LogPoint, LogRecordInfo, LogRecordPage } from './protocol.js';
export { RemoteJournal, type RemotePointView } from './client-journal.js';
export { RemoteReplication } from './client-replication.js';
export type * from './replication-protocol.js';
export type { SessionState, SessionStatus, FreezePolicy } from '../replication/primary.js';

/**
 * A connection to one worker host, over a MessageChannel of its own. Several clients may share a
 * worker; each closes only what it opened, and closing one leaves the worker serving the others.
 */
export class StrataClient {
  private readonly open = new Set<RemoteReader & { readonly handle: HandleId }>();
  private released = false;

  /**
   * Resolves when the worker answered the connect (the handshake). Rejects with `timeout` when
   * it did not within `readyTimeoutMs`, or `closed` when the worker failed first. Awaiting it is
   * optional: every call fails the same way.
   */
  readonly ready: Promise<void>;
  private readonly engine: Remote<EngineApi>;

  private constructor(
    private readonly raw: Remote<EngineApi>,
    private readonly liveness: Liveness,
  ) {
    this.ready = liveness.ready;
    this.engine = guardedRemote(raw, liveness);
  }

  /**
   * Talk to a worker running `stratadisk/worker`: a Web Worker, any comlink Endpoint (a
   * MessagePort, ...), or a Node `worker_threads` Worker (wrapped in an endpoint adapter).
   *
   * No call waits forever on a worker that is not there: without the worker's handshake within
   * `readyTimeoutMs` (default 30 s) calls reject with `timeout` (an empty or wrong worker
   * script); when the worker fails to load, throws an uncaught error or exits, they reject with
   * `closed`. See ./liveness.ts for what is and is not detected.
   */
  static connect(worker: Worker | Endpoint | NodeMessageTarget, options: ConnectOptions = {}): StrataClient {
    registerErrorTransfer();
    const ep: Endpoint = isNodeMessageTarget(worker) ? nodeEndpoint(worker) : (worker as Endpoint);
    // A channel of our own (see HostMessage): usable at once, since a port queues messages
    // until the worker starts listening on the other end.
    const { port1, port2 } = new MessageChannel();
    const liveness = new Liveness(port1, worker, options);
    const hello: HostMessage = { type: 'stratadisk:connect', port: port2 };
    ep.postMessage(hello, [port2]);
    return new StrataClient(wrap<EngineApi>(port1), liveness);
  }

  /** Create a volume (the namespace must not hold one: `exists`). */
  async createVolume(spec: BackendSpec, options: { size: number; blockSize?: number } | { backing: string; size?: number; blockSize?: number }): Promise<RemoteVolume> {
    const backing = 'backing' in options ? { backing: options.backing } : {};
    const h = await this.api().createVolume(spec, { size: options.size ?? 0, blockSize: options.blockSize, ...backing });
    return this.track(new RemoteVolume(this.engine, h, (v) => this.open.delete(v)));
  }

  /**
   * Open an existing volume. Writable opens take the volume's writer lock (`locked` if another
   * writer holds it); `readOnly: true` never takes it.
   */
  async openVolume(spec: BackendSpec, options: { readOnly?: boolean } = {}): Promise<RemoteVolume> {
    const h = await this.api().openVolume(spec, { readOnly: options.readOnly ?? false });
    return this.track(new RemoteVolume(this.engine, h, (v) => this.open.delete(v)));
  }

  /**
   * Delete every store of the volume at `spec` (a missing volume is not an error). Fails with
   * `locked` while it is open, in this worker or by another writer.
   */
  async deleteVolume(spec: BackendSpec): Promise<void> {
    return this.api().deleteVolume(spec);
  }

  /** Names of volumes under `parentPath` (memory and node-dir backends; others: `unsupported`). */
  async listVolumes(backend: BackendSpec['backend'], parentPath?: string): Promise<string[]> {
    return this.api().listVolumes(backend, parentPath);
  }

  /** Usage and quota of the origin's storage as the worker sees it (zeros under Node). */
  async storage(): Promise<StorageReport> {
    return this.api().storage();
  }

  /**
   * Ask for persistent storage. Browsers offer `navigator.storage.persist()` only to pages, so
   * from a worker this answers whether storage is already persistent; on a page, call
   * `navigator.storage.persist()` yourself after a user gesture for the real request.
   */
  async persist(): Promise<boolean> {
    return this.api().persist();
  }

  /**
   * Close every volume and snapshot view this client opened, then release the proxy (and its
   * channel). The worker keeps running and serving other clients; terminate it yourself.
   * Calls to a worker that is gone reject with `closed` (see ./liveness.ts for what is detected).
   */
  async close(): Promise<void> {
    if (this.released) return;
    const results = await Promise.allSettled([...this.open].map((r) => r.close()));
    this.released = true;
    this.liveness.dispose();
    this.raw[releaseProxy]();
    // A worker that is gone has nothing left to close: that is not a failure of close().
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && r.reason !== this.liveness.failed);
    if (failed) throw failed.reason;
  }

  private api(): Remote<EngineApi> {
    if (this.released) throw new StrataError('closed', 'This StrataClient is closed; connect again.');
    return this.engine;
  }

  private track<T extends RemoteReader & { readonly handle: HandleId }>(r: T): T {
    this.open.add(r);
    if (r instanceof RemoteVolume) r.onSnapshotOpened = (s) => this.open.add(s);
    return r;
  }
}

/** What you can read: a volume, or a snapshot of one. */
export interface RemoteReader {
  readonly size: number;
  readonly blockSize: number;
  /** `length` bytes at `offset`; the buffer arrives by transfer (no copy). */
  read(offset: number, length: number): Promise<Uint8Array>;
  map(): Promise<Extent[]>;
  close(): Promise<void>;
}

type Forget = (r: RemoteReader & { readonly handle: HandleId }) => void;

/** A read-only view of one snapshot, served by the worker. Closed with its volume. */
export class RemoteSnapshot implements RemoteReader {
  readonly size: number;
  readonly blockSize: number;
  readonly name: string;
  /** @internal */
  readonly handle: HandleId;
  private closed = false;

  /** @internal */
  constructor(private readonly engine: Remote<EngineApi>, h: OpenedHandle, private readonly forget: Forget) {
    this.handle = h.handle;
    this.size = h.size;
    this.blockSize = h.blockSize;
    this.name = h.kind === 'snapshot' ? h.name : '';
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.closed ? closedError('snapshot view') : this.engine.read(this.handle, offset, length);
  }

  async map(): Promise<Extent[]> {
    return this.closed ? closedError('snapshot view') : this.engine.map(this.handle);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.forget(this);
    await this.engine.close(this.handle);
  }

  /** @internal closed with its volume (the worker closes it there) */
  markClosed(): void {
    this.closed = true;
  }
}

/** A read-only view of a journaled volume at a point of its log, served by the worker. */
class RemoteLogView extends RemoteSnapshot implements RemotePointView {
  readonly seq: number;

  /** @internal */
  constructor(engine: Remote<EngineApi>, h: OpenedHandle, forget: Forget) {
    super(engine, h, forget);
    this.seq = h.kind === 'view' ? h.seq : 0;
  }
}

/**
 * A volume open in the worker: the Volume API, all async. (The in-process Volume answers
 * `info()` and `snapshots()` synchronously; here they are promises like everything else.)
 */
export class RemoteVolume implements RemoteReader {
  readonly size: number;
  readonly blockSize: number;
  readonly readOnly: boolean;
  /** @internal */
  readonly handle: HandleId;
  /** @internal */
  onSnapshotOpened: ((s: RemoteSnapshot) => void) | undefined;
  private readonly views = new Set<RemoteSnapshot>();
  private closed = false;
  /**
   * The volume's write log: `enable()`, `mark(label)`, `marks()`, `status()`, `view(point)`,
   * `restore(point, { force, onProgress, signal })`, `disable()`. See client-journal.ts.
   */
  readonly journal: RemoteJournal;
  /**
   * Replication of this volume, run in its worker: `replicateTo(target, options)`,
   * `serveReplica(source)`, `status()`, `synced()`, `freeze()`, `resume()`, `stop()`,
   * `promote()`, `demote()`. See client-replication.ts.
   */
  readonly replication: RemoteReplication;

  /** @internal */
  constructor(private readonly engine: Remote<EngineApi>, h: OpenedHandle, private readonly forget: Forget) {
    this.handle = h.handle;
    this.size = h.size;
    this.blockSize = h.blockSize;
    this.readOnly = h.readOnly;
    this.journal = new RemoteJournal({
      handle: this.handle,
      api: () => this.api(),
      adoptView: (v) => this.adopt(new RemoteLogView(this.engine, v, (s) => this.dropView(s))),
      closeLogViews: () => {
        for (const v of this.views) {
          if (v instanceof RemoteLogView) this.dropView(v);
        }
      },
      cancellable: (what, options, call) => this.cancellable(what, options, call),
    });
    this.replication = new RemoteReplication({ handle: this.handle, api: () => this.api() });
  }

  private adopt<T extends RemoteSnapshot>(view: T): T {
    this.views.add(view);
    this.onSnapshotOpened?.(view);
    return view;
  }

  /** A view closed by itself, or by the worker (its log disabled). */
  private dropView(v: RemoteReader & { readonly handle: HandleId }): void {
    if (!(v instanceof RemoteSnapshot)) return;
    v.markClosed();
    this.views.delete(v);
    this.forget(v);
  }

  /** The engine, or a `closed` error (a rejection, like every other failure) once closed. */
  private api(): Remote<EngineApi> {
    if (this.closed) throw new StrataError('closed', 'The volume is closed; open it again to use it.');
    return this.engine;
  }

  /** `length` bytes at `offset`; the buffer arrives by transfer (no copy). */
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.api().read(this.handle, offset, length);
  }

  /**
   * Write `data` at `offset` (durable after the next `flush()`). Zero-copy: when `data` spans its
   * whole ArrayBuffer, that buffer is TRANSFERRED to the worker and `data` is detached (length 0)
   * once this returns — copy first (`data.slice()`) if you still need it. A view of part of a
   * buffer (or of a SharedArrayBuffer) is copied once into a fresh buffer, which is transferred.
   */
  async write(offset: number, data: Uint8Array): Promise<void> {
    const whole = data.buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
    const bytes = whole ? data : data.slice();
    return this.api().write(this.handle, offset, transfer(bytes, [bytes.buffer as ArrayBuffer]));
  }

  /** Make a range read as zeros without storing data for whole blocks. */
  async writeZeroes(offset: number, length: number): Promise<void> {
    return this.api().writeZeroes(this.handle, offset, length);
  }

  /** The durability barrier: every write that resolved before this call is durable when it resolves. */
  async flush(): Promise<void> {
    return this.api().flush(this.handle);
  }

  /** Seal the current state as snapshot `name` (O(1); also a durability point). */
  async snapshot(name: string): Promise<SnapshotInfo> {
    return this.api().snapshot(this.handle, name);
  }

  /** The volume's snapshots (a promise here; synchronous on the in-process Volume). */
  async snapshots(): Promise<SnapshotInfo[]> {
    return this.api().snapshots(this.handle);
  }

  /** A read-only view of snapshot `name`; it is closed when this volume closes. */
  async openSnapshot(name: string): Promise<RemoteReader> {
    const h = await this.api().openSnapshot(this.handle, name);
    return this.adopt(new RemoteSnapshot(this.engine, h, (s) => this.dropView(s)));
  }

  /** Throw away changes since snapshot `name` and continue from it (the snapshot is kept). */
  async revert(name: string): Promise<void> {
    return this.api().revert(this.handle, name);
  }

  /** Delete snapshot `name`; no other snapshot's content changes. */
  async deleteSnapshot(name: string): Promise<void> {
    return this.api().deleteSnapshot(this.handle, name);
  }

  /** Extents of the live volume (like `qemu-img map`). */
  async map(): Promise<Extent[]> {
    return this.api().map(this.handle);
  }

  /** Layers, chain, snapshots and sizes (a promise here; synchronous on the in-process Volume). */
  async info(): Promise<VolumeInfo> {
    return this.api().info(this.handle);
  }

  /**
   * Verify every data block against its checksum. `onProgress` receives `{ done, total }` blocks
   * after each batch; aborting `signal` cancels the check in the worker (rejects with `aborted`).
   */
  async check(options: { onProgress?: (e: ProgressEvent) => void; signal?: AbortSignal } = {}): Promise<CheckReport> {
    return this.cancellable('check', options, (op, callback) => this.api().check(this.handle, op, callback));
  }

  /** Run `call` as operation `op` in the worker: progress through a proxy, cancelled by `signal`. */
  private async cancellable<T>(what: string, options: { onProgress?: (e: ProgressEvent) => void; signal?: AbortSignal }, call: (op: string, callback: ((e: ProgressEvent) => void) | undefined) => Promise<T>): Promise<T> {
    const { onProgress, signal } = options;
    if (signal?.aborted) throw new StrataError('aborted', `The ${what} was cancelled before it started.`);
    const op = randomId();
    const callback = onProgress ? proxy((e: ProgressEvent) => onProgress(e)) : undefined;
    const onAbort = () => {
      this.engine.cancel(op).catch(() => {});
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await call(op, callback);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * For a volume on a remote image: fetch every block not local yet, so that it works offline.
   * `onProgress` gets `{ done, total }` in bytes; aborting `signal` stops it (rejects with
   * `aborted`; what was fetched is kept); `control` receives pause/resume functions.
   */
  async stream(
    options: { onProgress?: (e: ProgressEvent) => void; signal?: AbortSignal; rateLimit?: number; control?: (c: { pause(): Promise<boolean>; resume(): Promise<boolean> }) => void } = {},
  ): Promise<void> {
    const streamOptions = options.rateLimit === undefined ? {} : { rateLimit: options.rateLimit };
    return this.cancellable('stream', options, (op, callback) => {
      // `control` receives pause/resume for the running job (false once it has ended).
      options.control?.({ pause: () => this.engine.controlJob(op, 'pause'), resume: () => this.engine.controlJob(op, 'resume') });
      return this.api().stream(this.handle, op, callback, streamOptions);
    });
  }

  /** For a volume on a remote image: drop the live volume's changes (it reads as the image again). */
  async reset(): Promise<void> {
    return this.api().reset(this.handle);
  }

  /** For a volume on a remote image: re-pin it (to `url`), dropping fetched blocks if it changed. */
  async refreshImage(url?: string): Promise<boolean> {
    return this.api().refreshImage(this.handle, url);
  }

  /**
   * Mirror this volume into `target` (e.g. from OPFS to IndexedDB) while it stays in use, then
   * switch over: this handle reads and writes the copy from then on (snapshot views opened
   * before keep reading the original). `onProgress` gets the job's info (bytes done / total,
   * rate); aborting `signal` cancels it (the original stays, nothing is left at the target);
   * `control` receives pause/resume functions for the running job.
   */
  async mirror(
    target: BackendSpec,
    options: { flatten?: boolean; rateLimit?: number; onProgress?: (info: JobInfo) => void; signal?: AbortSignal; control?: (c: { pause(): Promise<boolean>; resume(): Promise<boolean> }) => void } = {},
  ): Promise<JobInfo> {
    const { onProgress, signal, control, ...rest } = options;
    if (signal?.aborted) throw new StrataError('aborted', 'The mirror was cancelled before it started.');
    const op = randomId();
    const callback = onProgress ? proxy((info: JobInfo) => onProgress(info)) : undefined;
    const onAbort = () => {
      this.engine.cancel(op).catch(() => {});
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    control?.({ pause: () => this.engine.controlJob(op, 'pause'), resume: () => this.engine.controlJob(op, 'resume') });
    try {
      return await this.api().mirror(this.handle, target, rest, op, callback);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Flush and close the volume and its snapshot views in the worker. Closing twice is a no-op. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const v of this.views) {
      v.markClosed();
      this.forget(v);
    }
    this.views.clear();
    this.forget(this);
    await this.engine.close(this.handle);
  }
}

function closedError(what: string): Promise<never> {
  return Promise.reject(new StrataError('closed', `The ${what} is closed; open it again to use it.`));
}

function randomId(): string {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}
