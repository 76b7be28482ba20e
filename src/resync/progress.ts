import { StrataError } from '../errors.js';
import { KIND_RESYNC_PROGRESS, MAGIC_RESYNC_PROGRESS } from '../format/magic.js';
import { RecordSlots, newestValid } from '../format/record-slots.js';
import type { StoreNamespace } from '../store/store.js';

/**
 * A resync's progress at its destination, crash-safe in two record slots (the generic A/B
 * slots of src/format/record-slots.ts, as the job journal keeps its own): which pair it is
 * (identities, size, segment size) and the first segment not yet finished. A batch is recorded
 * only after the destination flushed its writes, so a rerun that finds the record continues
 * from `next` and never skips a segment that was not durably copied.
 */
export const PROGRESS_SLOTS = ['resync-progress.0', 'resync-progress.1'] as const;
const MAX_BYTES = 64 * 1024;

export interface ResyncProgress {
  src: string;
  dst: string;
  size: number;
  segmentSize: number;
  /** the first segment not finished: segments below it are equal on both sides (as of when they were copied) */
  next: number;
  /** segments copied by earlier runs of this resync (counted, not listed) */
  copiedBefore: number;
}

const SPEC = new RecordSlots<ResyncProgress>({
  names: PROGRESS_SLOTS,
  format: 'resyncProgress',
  label: 'resync progress',
  magic: MAGIC_RESYNC_PROGRESS,
  kind: KIND_RESYNC_PROGRESS,
  maxBytes: MAX_BYTES,
  decode(parsed) {
    const o = parsed as Record<string, unknown>;
    const int = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
    if (typeof o !== 'object' || o === null || typeof o.src !== 'string' || typeof o.dst !== 'string' || !int(o.size) || !int(o.segmentSize) || !int(o.next) || !int(o.copiedBefore)) {
      throw new StrataError('corrupt', 'not a resync progress record');
    }
    return { src: o.src, dst: o.dst, size: o.size, segmentSize: o.segmentSize, next: o.next, copiedBefore: o.copiedBefore };
  },
});

/** Where a resync keeps its progress (the engine calls these; null progress = no resume). */
export interface ProgressStore {
  load(): Promise<ResyncProgress | null>;
  save(p: ResyncProgress): Promise<void>;
  clear(): Promise<void>;
}

/** Progress kept in `ns` (a volume's namespace, or a directory beside a raw destination). */
export function progressIn(ns: StoreNamespace): ProgressStore {
  let generation = 0;
  return {
    async load() {
      const slots = await SPEC.readAll(ns);
      for (const s of slots) if (s.generation !== undefined) generation = Math.max(generation, s.generation);
      return newestValid(slots)?.value ?? null;
    },
    async save(p) {
      const payload = new TextEncoder().encode(JSON.stringify(p));
      await SPEC.write(ns, ++generation, payload, { truncate: true, syncNewSlot: true });
    },
    async clear() {
      for (const n of PROGRESS_SLOTS) if (await ns.exists(n)) await ns.delete(n);
      await ns.sync();
    },
  };
}
