/**
 * The write log of a RemoteVolume (`volume.journal`): enable and disable it, marks, status,
 * point-in-time views and restore, each one call to the worker (src/worker/engine.ts).
 */
import type { Remote } from 'comlink';
import type { JournalStatus, Mark, RestoreReport } from '../journal/index.js';
import type { EngineApi, EnableJournalOptions, HandleId, LogPoint, LogRecordPage, OpenedHandle, ProgressEvent } from './protocol.js';

/** What RemoteJournal needs from its volume (kept there: the closed check, views, cancellation). */
export interface JournalHost {
  readonly handle: HandleId;
  api(): Remote<EngineApi>;
  adoptView(h: OpenedHandle): RemotePointView;
  closeLogViews(): void;
  cancellable<T>(what: string, options: { onProgress?: (e: ProgressEvent) => void; signal?: AbortSignal }, call: (op: string, callback: ((e: ProgressEvent) => void) | undefined) => Promise<T>): Promise<T>;
}

/** A read-only view of a volume at a point of its write log (see RemoteVolume.journal.view). */
export interface RemotePointView {
  readonly size: number;
  readonly blockSize: number;
  /** the log record the view is at (the point resolved) */
  readonly seq: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  map(): Promise<import('../volume/map.js').Extent[]>;
  close(): Promise<void>;
}

export class RemoteJournal {
  /** @internal */
  constructor(private readonly host: JournalHost) {}

  /**
   * Start logging every write of this volume (open for writing; `exists` when it already
   * keeps a log). From then on the volume opens for writing only through the worker (or
   * openJournaled); a plain `Volume.open` for writing is refused with `unsupported`.
   */
  async enable(options: EnableJournalOptions = {}): Promise<JournalStatus> {
    return this.host.api().enableJournal(this.host.handle, options);
  }

  /** Stop logging and delete the log; the log's base snapshot stays. Views of the log close. */
  async disable(): Promise<void> {
    await this.host.api().disableJournal(this.host.handle);
    this.host.closeLogViews();
  }

  /** The log's state (records, marks, last flush, recovery on open), or null when there is none. */
  async status(): Promise<JournalStatus | null> {
    return this.host.api().journalStatus(this.host.handle);
  }

  /** Flush, then append a transaction-end mark; durable when this resolves. */
  async mark(label: string): Promise<Mark> {
    return this.host.api().mark(this.host.handle, label);
  }

  /** Marks in log order, with the log record each marks (`point`) and its time. */
  async marks(): Promise<Mark[]> {
    return this.host.api().marks(this.host.handle);
  }

  /**
   * The log's records with seq in (after, upTo] (writes, zeroes, flushes, marks with their
   * times), at most `limit` per call (default and most 10,000; `more` says to ask again after
   * the last one), with the range a view may be at (`oldest`..`lastFlush`).
   */
  async records(after: number, upTo: number = Number.MAX_SAFE_INTEGER, limit?: number): Promise<LogRecordPage> {
    return this.host.api().journalRecords(this.host.handle, after, upTo, limit);
  }

  /**
   * A read-only view of the volume as it was at `point`: `'mark:LABEL'`, `'seq:N'`,
   * `'time:ISO'`, `'latest'`, or `{ mark }`, `{ seq }`, `{ time: Date }`. Closed with the volume.
   */
  async view(point: LogPoint): Promise<RemotePointView> {
    const h = await this.host.api().openView(this.host.handle, point);
    return this.host.adoptView(h);
  }

  /**
   * Roll the live volume back (or forward) to `point`: only a mark unless `force`. The restore
   * is logged like any write; the report names the mark to restore to for undoing it.
   * `onProgress` gets `{ done, total }` in changed blocks; aborting `signal` stops it (rejects
   * with `aborted`; the volume is part way: run it again, or restore to the undo mark).
   */
  async restore(point: LogPoint, options: { force?: boolean; onProgress?: (e: ProgressEvent) => void; signal?: AbortSignal } = {}): Promise<RestoreReport> {
    const force = options.force === true;
    return this.host.cancellable('restore', options, (op, callback) => this.host.api().restore(this.host.handle, point, { force }, op, callback));
  }
}
