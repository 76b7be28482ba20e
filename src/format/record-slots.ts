import { StrataError } from '../errors.js';
import type { Store, StoreNamespace } from '../store/store.js';
import { loadKernels } from '../wasm/index.js';
import { FORMATS, newerVersion, type FormatName } from './magic.js';
import { RECORD_HEADER, RECORD_OVERHEAD, checksumOk, corrupt, decodeHead, encodeRecord } from './record.js';

/**
 * A crash-safe value in two record slots (A/B), as the volume manifest, the shadow catalog and
 * the job journal keep theirs. Each slot holds one checksummed record (src/format/record.ts)
 * whose sequence number is the value's generation; generation g lives in slot g % 2. A commit
 * writes generation g+1 into the slot not holding g and flushes it, so a torn commit leaves
 * generation g intact; a reader reads both slots and takes the newest valid one. No rename or
 * backend transaction is needed, so the scheme works on raw devices, OPFS and IndexedDB.
 *
 * This file reads and writes slots and says what each holds; what a missing, damaged or newer
 * slot means (an error, an empty value, a volume to refuse) is the caller's to decide.
 */

/** The JSON payload of a record: `decode` validates it (and upgrades an older version). */
export interface RecordSlotsSpec<T> {
  /** the two slot names, generation g in names[g % 2] */
  readonly names: readonly [string, string];
  /** the format in the registry (src/format/magic.ts): its record versions */
  readonly format: FormatName;
  /** the record's name in messages ("no <label> record header") */
  readonly label: string;
  readonly magic: number;
  readonly kind: number;
  /** largest payload ever read or written; a header claiming more is not ours */
  readonly maxBytes: number;
  /**
   * Check a parsed payload of record version `version` and return the value (upgraded to the
   * current shape). Throw `unsupported` for an inner version this stratadisk does not read;
   * any other throw makes the slot invalid.
   */
  decode(parsed: unknown, version: number, name: string): T;
}

/**
 * What one slot holds: `missing` (no such file), `empty` (size 0: created but never written),
 * `invalid` (not a complete record: torn by a crash, or damaged), `unsupported` (a complete
 * record of a version this stratadisk does not read) or `valid` (a value of `generation`).
 */
export type SlotState = 'missing' | 'empty' | 'invalid' | 'unsupported' | 'valid';

export interface SlotRead<T> {
  name: string;
  state: SlotState;
  /** the record's generation (valid and unsupported slots, and invalid ones whose record was whole) */
  generation?: number;
  /** the record version (valid slots) */
  version?: number;
  value?: T;
  /** why the slot is invalid or unsupported (`corrupt` without advice: the caller judges it) */
  error?: StrataError;
}

/** How a commit writes its slot. */
export interface SlotWriteOptions {
  /** cut the slot to the record's length when it held a longer one (stores that can be resized) */
  truncate?: boolean;
  /** sync the namespace after creating a slot file that did not exist (its name must be durable too) */
  syncNewSlot?: boolean;
}

export class RecordSlots<T> {
  constructor(readonly spec: RecordSlotsSpec<T>) {}

  /** The slot generation `generation` goes to. */
  slotOf(generation: number): string {
    return this.spec.names[generation % 2]!;
  }

  /** Read both slots, in `names` order, without judging them. */
  async readAll(ns: StoreNamespace): Promise<SlotRead<T>[]> {
    await loadKernels(); // record checksums are XXH3 (WASM)
    const out: SlotRead<T>[] = [];
    for (const name of this.spec.names) {
      if (!(await ns.exists(name))) {
        out.push({ name, state: 'missing' });
        continue;
      }
      const store = await ns.open(name, { readOnly: true });
      try {
        out.push(store.size === 0 ? { name, state: 'empty' } : await this.readSlot(store, name));
      } finally {
        await store.close();
      }
    }
    return out;
  }

  private async readSlot(store: Store, name: string): Promise<SlotRead<T>> {
    const { magic, kind, maxBytes, format } = this.spec;
    const invalid = (detail: string): SlotRead<T> => ({ name, state: 'invalid', error: corrupt(name, detail, '') });
    if (store.size < RECORD_OVERHEAD) return invalid('shorter than a record');
    const head = decodeHead(await store.read(0, RECORD_HEADER), magic, maxBytes);
    if (!head || head.kind !== kind) return invalid(`no ${this.spec.label} record header`);
    if (RECORD_OVERHEAD + head.length > store.size) return invalid('the record is cut short');
    const whole = await store.read(0, RECORD_OVERHEAD + head.length);
    if (!checksumOk(whole, head.length)) return invalid('checksum mismatch');
    const generation = head.seq;
    if (!(FORMATS[format].reads as readonly number[]).includes(head.version)) {
      return { name, state: 'unsupported', generation, error: newerVersion(format, name, head.version) };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(whole.subarray(RECORD_HEADER, RECORD_HEADER + head.length)));
    } catch {
      return invalid('not JSON');
    }
    try {
      return { name, state: 'valid', generation, version: head.version, value: this.spec.decode(parsed, head.version, name) };
    } catch (e) {
      if (e instanceof StrataError && e.code === 'unsupported') return { name, state: 'unsupported', generation, error: e };
      return { name, state: 'invalid', generation, error: e instanceof StrataError ? e : corrupt(name, String(e), '') };
    }
  }

  /** Create both slot files empty (then sync the namespace), so "nothing here" is never confused with a torn first commit. */
  async createEmpty(ns: StoreNamespace, options: { flushEach: boolean }): Promise<void> {
    for (const name of this.spec.names) {
      const s = await ns.open(name, { create: true });
      if (options.flushEach) await s.flush();
      await s.close();
    }
    await ns.sync();
  }

  /** The record that holds `payload` as `generation`, in the version this stratadisk writes. */
  encode(generation: number, payload: Uint8Array): Uint8Array {
    const { magic, kind, format } = this.spec;
    return encodeRecord({ magic, kind, version: FORMATS[format].writes, seq: generation, length: payload.length }, payload);
  }

  /** Write `payload` as `generation` into its slot and flush it (the caller checked the size). */
  async write(ns: StoreNamespace, generation: number, payload: Uint8Array, options: SlotWriteOptions = {}): Promise<void> {
    const rec = this.encode(generation, payload);
    const name = this.slotOf(generation);
    const created = options.syncNewSlot ? !(await ns.exists(name)) : false;
    const store = await ns.open(name, { create: true });
    try {
      await store.write(0, rec);
      if (options.truncate && store.size > rec.length && store.resizable) await store.truncate(rec.length);
      await store.flush();
    } finally {
      await store.close();
    }
    if (created) await ns.sync();
  }
}

/** What the choosing helpers below look at (a SlotRead, or a caller's own view of one). */
export interface SlotSummary {
  state: SlotState;
  generation?: number;
}

/** The valid slot of the highest generation (the first one on a tie), or null. */
export function newestValid<S extends SlotSummary>(slots: readonly S[]): S | null {
  let best: S | null = null;
  for (const s of slots) if (s.state === 'valid' && (!best || s.generation! > best.generation!)) best = s;
  return best;
}

/**
 * An unsupported slot newer than `best` (or any, when nothing is valid): opening `best` instead
 * would silently roll the value back to what an older stratadisk wrote, so callers refuse it.
 */
export function newerUnsupported<S extends SlotSummary>(slots: readonly S[], best: SlotSummary | null): S | undefined {
  return slots.find((s) => s.state === 'unsupported' && (!best || s.generation! > best.generation!));
}

/** Does any slot hold bytes (a slot that is missing or empty is a creation that never committed)? */
export function anyWritten(slots: readonly SlotSummary[]): boolean {
  return slots.some((s) => s.state !== 'missing' && s.state !== 'empty');
}
