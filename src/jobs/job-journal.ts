import { StrataError } from '../errors.js';
import { KIND_JOBS, MAGIC_JOBS } from '../format/magic.js';
import { RecordSlots, newerUnsupported, newestValid } from '../format/record-slots.js';
import type { StoreNamespace } from '../store/store.js';

/**
 * Durable records of the block jobs started on a volume, so that after a crash or a reload
 * `stratadisk jobs DIR` can say what was interrupted, and the next writer can resume or abandon
 * it. Same scheme as the manifest (src/format/record-slots.ts): two slots (`jobs.0`, `jobs.1`),
 * each commit writes the next generation into the other slot and flushes it, so a torn commit
 * leaves the previous one. Unlike the manifest, a journal whose slots are absent or damaged reads
 * as empty (it only lists interrupted jobs); one written by a newer stratadisk is `unsupported`.
 *
 * A record is written before the job changes anything and removed after its last change is
 * committed. A record whose job has no process behind it any more is "interrupted".
 */
export const JOURNAL_SLOTS = ['jobs.0', 'jobs.1'] as const;
export { MAGIC_JOBS };
/** A journal holds a handful of records; anything larger is not ours and is never read. */
const MAX_JOURNAL_BYTES = 1 << 20;
const MAX_RECORDS = 256;

const journalSlots = new RecordSlots<JobRecord[]>({
  names: JOURNAL_SLOTS,
  format: 'jobJournal',
  label: 'job journal',
  magic: MAGIC_JOBS,
  kind: KIND_JOBS,
  maxBytes: MAX_JOURNAL_BYTES,
  decode: (parsed) => decodeRecords(parsed),
});

export interface JobRecord {
  id: string;
  kind: string;
  /** what the job was asked to do (enough to resume it) */
  params: Record<string, string | number | boolean | null>;
  started: string;
  /** process that ran it, and its host (so a lister can tell a running job from an interrupted one) */
  pid: number | null;
  host: string | null;
}

/**
 * One journal object per writable namespace in this process: two jobs running on one volume
 * (say a stream and an online consolidation) must not each commit from their own copy of the
 * list, or the later commit would drop the other's record. Read-only namespaces are read afresh
 * (another process may be the writer).
 */
const shared = new WeakMap<StoreNamespace, Promise<JobJournal>>();

export class JobJournal {
  /** commits run one after another, each from the list the previous one left */
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    private readonly ns: StoreNamespace,
    private generation: number,
    private list: JobRecord[],
  ) {}

  /** Read the newest valid generation; an absent or unreadable journal is an empty one. */
  static open(ns: StoreNamespace): Promise<JobJournal> {
    if (ns.readOnly) return JobJournal.read(ns);
    let got = shared.get(ns);
    if (!got) {
      got = JobJournal.read(ns);
      shared.set(ns, got);
      got.catch(() => shared.delete(ns));
    }
    return got;
  }

  private static async read(ns: StoreNamespace): Promise<JobJournal> {
    const slots = await journalSlots.readAll(ns);
    const best = newestValid(slots);
    const newer = newerUnsupported(slots, best);
    if (newer) throw newer.error!;
    return new JobJournal(ns, best?.generation ?? 0, best?.value ?? []);
  }

  records(): JobRecord[] {
    return this.list.map((r) => ({ ...r, params: { ...r.params } }));
  }

  /** Add (or replace) a record and make it durable. */
  put(rec: JobRecord): Promise<void> {
    return this.serially(() => {
      const next = this.list.filter((r) => r.id !== rec.id);
      next.push(rec);
      if (next.length > MAX_RECORDS) throw new StrataError('quota', `The job journal holds ${MAX_RECORDS} records; run \`stratadisk jobs DIR --clear\` to drop interrupted ones.`);
      return this.commit(next);
    });
  }

  /** Remove a record (no-op when absent) and make that durable. */
  remove(id: string): Promise<void> {
    return this.serially(async () => {
      if (!this.list.some((r) => r.id === id)) return;
      await this.commit(this.list.filter((r) => r.id !== id));
    });
  }

  private serially(step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(step);
    this.queue = run.catch(() => {});
    return run;
  }

  private async commit(records: JobRecord[]): Promise<void> {
    if (this.ns.readOnly) throw new StrataError('read-only', 'The job journal cannot be written: the volume is open read-only.');
    const gen = this.generation + 1;
    const payload = new TextEncoder().encode(JSON.stringify(records));
    if (payload.length > MAX_JOURNAL_BYTES) throw new StrataError('quota', 'The job journal is full; drop interrupted jobs with `stratadisk jobs DIR --clear`.');
    // Slots are made on first use (the namespace synced after); a shorter record cuts the slot.
    await journalSlots.write(this.ns, gen, payload, { truncate: true, syncNewSlot: true });
    this.generation = gen;
    this.list = records;
  }
}

/** The records of a parsed journal payload; throws (the slot is then damaged) when it is not one. */
function decodeRecords(parsed: unknown): JobRecord[] {
  const bad = (): never => {
    throw new StrataError('corrupt', 'The job journal holds a record that is not a job.');
  };
  if (!Array.isArray(parsed) || parsed.length > MAX_RECORDS) bad();
  const records: JobRecord[] = [];
  for (const r of parsed as unknown[]) {
    const x = r as JobRecord;
    if (typeof x !== 'object' || x === null || typeof x.id !== 'string' || typeof x.kind !== 'string' || typeof x.params !== 'object' || x.params === null) bad();
    records.push({ id: x.id, kind: x.kind, params: x.params, started: String(x.started), pid: typeof x.pid === 'number' ? x.pid : null, host: typeof x.host === 'string' ? x.host : null });
  }
  return records;
}
