/**
 * Wire types between a page (or Node thread) and the stratadisk worker host. Comlink carries the
 * calls; these types say what crosses the boundary. Everything here is structured-cloneable:
 * byte buffers move by transfer, errors by the `throw` transfer handler in ./errors.ts, progress
 * by a Comlink.proxy callback.
 */
import type { ErrorCode } from '../errors.js';
import type { CheckReport } from '../volume/check.js';
import type { JobInfo } from '../jobs/job.js';
import type { Extent } from '../volume/map.js';
import type { SnapshotInfo, VolumeInfo } from '../volume/volume.js';
import type { JournalStatus, Mark, Point, RestoreReport } from '../journal/index.js';
import type { ReplicationApi } from './replication-protocol.js';

/**
 * Messages of our own on the worker's main endpoint (everything else there is comlink's).
 * `connect`: a client hands the worker one end of a fresh MessageChannel; the worker serves the
 * engine on it. Each client thus has its own channel, and releasing it (StrataClient.close)
 * leaves the worker serving everyone else.
 */
export type HostMessage = { type: 'stratadisk:connect'; port: MessagePort };

export function isHostMessage(data: unknown): data is HostMessage {
  const m = data as Partial<HostMessage> | null;
  return typeof m === 'object' && m !== null && m.type === 'stratadisk:connect' && typeof m.port === 'object' && m.port !== null;
}

/**
 * The worker's first message on a client's channel, sent as soon as it serves the engine there:
 * the handshake. A client that does not get it in time (an empty or wrong worker script, one
 * that failed to load) fails its calls with `timeout` instead of waiting forever; `alive` lets
 * it learn later that the worker is gone.
 */
export type ReadyMessage = {
  type: 'stratadisk:ready';
  /** the Web Lock this worker holds while it lives (see alive-lock.ts); absent without Web Locks */
  alive?: string;
};

export function isReadyMessage(data: unknown): data is ReadyMessage {
  return typeof data === 'object' && data !== null && (data as Partial<ReadyMessage>).type === 'stratadisk:ready';
}

/** Where a volume lives. */
export type BackendName = 'memory' | 'opfs' | 'idb' | 'node-dir' | 'remote';

/**
 * A volume's namespace of stores:
 * - `memory`: a namespace kept in the worker, by `path`, for the worker's lifetime;
 * - `opfs`: a directory path under the origin's OPFS root (dedicated workers only);
 * - `idb`: an IndexedDB database name;
 * - `node-dir`: a directory (Node worker_threads only).
 */
export interface BackendSpec {
  backend: BackendName;
  path: string;
}

/** Progress of a long operation: `done` of `total` units (blocks, for `check`). */
export interface ProgressEvent {
  done: number;
  total: number;
}

/** Id of an open volume or snapshot view in one worker. Never reused within a worker's life. */
export type HandleId = number;

/** Id of a cancellable operation, chosen by the caller (unique per worker: use a random UUID). */
export type OpId = string;

/** What the worker answers when it opens something. */
export type OpenedHandle =
  | { kind: 'volume'; handle: HandleId; size: number; blockSize: number; readOnly: boolean }
  | { kind: 'snapshot'; handle: HandleId; size: number; blockSize: number; readOnly: true; name: string; volume: HandleId }
  /** a point-in-time view of a journaled volume: the volume as it was after log record `seq` */
  | { kind: 'view'; handle: HandleId; size: number; blockSize: number; readOnly: true; seq: number; volume: HandleId };

/**
 * A point of a volume's write log: `seq:N`, `time:ISO`, `mark:LABEL` or `latest` as text, or the
 * parsed form (`{ seq }`, `{ time: Date }`, `{ mark }`); see src/journal/points.ts.
 */
export type LogPoint = string | Point;

export interface EnableJournalOptions {
  /**
   * Keep the log in another namespace of the same backend (an OPFS directory, an IndexedDB
   * database name). Default: the volume's own namespace, next to its stores.
   */
  logPath?: string;
}

/** A record of the write log as the page sees it (see EngineApi.journalRecords). */
export interface LogRecordInfo {
  seq: number;
  /** ms since 1970 */
  time: number;
  kind: 'write' | 'zero' | 'flush' | 'mark';
  /** a mark's label */
  label?: string;
}

/** One bounded page of log records, with the range a view may be at. */
export interface LogRecordPage {
  /** records with seq in (after, upTo], in log order, at most `limit` of them */
  records: LogRecordInfo[];
  /** true when more records follow in the range: ask again after the last one */
  more: boolean;
  /** the oldest point kept (the base, or the point the log was folded to) */
  oldest: number;
  /** the newest point a view may be at (the last durable flush) */
  lastFlush: number;
}

export interface RestoreOptions {
  /** allow a point that is not a mark (it may be inside a transaction) */
  force?: boolean;
}

export interface StorageReport {
  /** bytes used by this origin (0 where unknown, e.g. Node) */
  usage: number;
  /** bytes this origin may use (0 where unknown) */
  quota: number;
  /** true when the browser will not evict this origin's storage under pressure */
  persisted: boolean;
}

/** An error as it crosses the boundary. `code` is set for StrataError (and kept on others that have a string code). */
export interface SerializedError {
  name: string;
  message: string;
  code?: ErrorCode | string;
  stack?: string;
}

/** What comlink's `throw` handler carries: an Error (serialised), or any other thrown value (cloned). */
export type ThrownValue = { isError: true; value: SerializedError } | { isError: false; value: unknown };

export interface CreateOptions {
  /** Virtual size; optional (default: the image's size) when `backing` is given. */
  size: number;
  blockSize?: number;
  /** Base the volume on the raw image at this http(s) URL: copy on read, pinned by ETag/Last-Modified. */
  backing?: string;
}

/** Options of a stream job (fetching the rest of a volume's remote image). */
export interface StreamOptions {
  /** bytes per second; absent = unlimited */
  rateLimit?: number;
}

export interface OpenOptions {
  readOnly?: boolean;
}

/**
 * The methods the worker exposes (see engine.ts). Every method is async across the boundary.
 * `read` answers with a buffer transferred to the caller; `write` expects its buffer transferred.
 */
export interface EngineApi extends ReplicationApi {
  createVolume(spec: BackendSpec, options: CreateOptions): Promise<OpenedHandle>;
  openVolume(spec: BackendSpec, options?: OpenOptions): Promise<OpenedHandle>;
  deleteVolume(spec: BackendSpec): Promise<void>;
  listVolumes(backend: BackendName, parentPath?: string): Promise<string[]>;
  read(h: HandleId, offset: number, length: number): Promise<Uint8Array>;
  write(h: HandleId, offset: number, data: Uint8Array): Promise<void>;
  writeZeroes(h: HandleId, offset: number, length: number): Promise<void>;
  flush(h: HandleId): Promise<void>;
  snapshot(h: HandleId, name: string): Promise<SnapshotInfo>;
  snapshots(h: HandleId): Promise<SnapshotInfo[]>;
  openSnapshot(h: HandleId, name: string): Promise<OpenedHandle>;
  revert(h: HandleId, name: string): Promise<void>;
  deleteSnapshot(h: HandleId, name: string): Promise<void>;
  map(h: HandleId): Promise<Extent[]>;
  info(h: HandleId): Promise<VolumeInfo>;
  check(h: HandleId, op?: OpId, onProgress?: (e: ProgressEvent) => void): Promise<CheckReport>;
  /** Fetch the rest of a copy-on-read volume's image (progress in bytes); cancel with `op`. */
  stream(h: HandleId, op?: OpId, onProgress?: (e: ProgressEvent) => void, options?: StreamOptions): Promise<void>;
  /** Drop the live volume's changes: it reads as its image again. */
  reset(h: HandleId): Promise<void>;
  /** Re-pin the image (to `url` when given), dropping fetched blocks when it changed; true when it did. */
  refreshImage(h: HandleId, url?: string): Promise<boolean>;
  cancel(op: OpId): Promise<boolean>;
  controlJob(op: OpId, action: 'pause' | 'resume'): Promise<boolean>;
  mirror(h: HandleId, target: BackendSpec, options?: { flatten?: boolean; rateLimit?: number }, op?: OpId, onProgress?: (info: JobInfo) => void): Promise<JobInfo>;
  /** Start a write log for the writable volume `h` (`exists` if it keeps one). */
  enableJournal(h: HandleId, options?: EnableJournalOptions): Promise<JournalStatus>;
  /** Stop logging and delete the log (its base snapshot stays, as an ordinary snapshot). */
  disableJournal(h: HandleId): Promise<void>;
  /** The log's state, or null when the volume keeps none. */
  journalStatus(h: HandleId): Promise<JournalStatus | null>;
  /** Flush and append a transaction-end mark. */
  mark(h: HandleId, label: string): Promise<Mark>;
  marks(h: HandleId): Promise<Mark[]>;
  /** Records of the log with seq in (after, upTo], at most `limit` (default and most: 10,000) per call. */
  journalRecords(h: HandleId, after: number, upTo: number, limit?: number): Promise<LogRecordPage>;
  /** Open a read-only view of the volume at a point of its log (a handle, like openSnapshot). */
  openView(h: HandleId, point: LogPoint): Promise<OpenedHandle>;
  /** Roll the live volume to a point (progress in blocks); cancel with `op`. */
  restore(h: HandleId, point: LogPoint, options?: RestoreOptions, op?: OpId, onProgress?: (e: ProgressEvent) => void): Promise<RestoreReport>;
  close(h: HandleId): Promise<void>;
  storage(): Promise<StorageReport>;
  persist(): Promise<boolean>;
}
