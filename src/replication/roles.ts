import { StrataError } from '../errors.js';
import { KIND_REPLICATION_ROLE, MAGIC_REPLICATION_ROLE } from '../format/magic.js';
import { RecordSlots, newerUnsupported, newestValid } from '../format/record-slots.js';
import type { StoreNamespace } from '../store/store.js';
import { LIMITS, type Generations } from './protocol.js';

/**
 * A volume's replication role and data generations, kept crash-safe in its namespace
 * (`replication.0` / `replication.1`, A/B record slots as the manifest keeps its own).
 *
 * Generations are DRBD's data generation UUIDs: a random 64-bit id names the data a side holds.
 * Both sides of a session in step hold the same `current`. A side starts a new generation (the
 * old one goes to `history`) whenever it may be written apart from its peer: a primary when its
 * sessions freeze and it goes on taking writes, a secondary when it is promoted. So on connect:
 * - equal `current`: in step (only the primary's out-of-sync bitmap moves);
 * - the secondary's `current` in the primary's history: the primary went on alone (resync from
 *   its bitmap);
 * - the primary's `current` in the secondary's history: the secondary was promoted and went on
 *   alone; this primary is stale and must be demoted and failed back;
 * - neither: both were written apart. Split brain, reported, never merged.
 */
export type Role = 'primary' | 'secondary' | 'none';

export interface RoleState {
  role: Role;
  gen: Generations;
  /** secondary: false from a resync's start to its end (its content is then no single point in time) */
  consistent: boolean;
  /** secondary: the snapshot that keeps its last consistent state while a resync runs */
  resyncSnapshot: string | null;
  /** the peer volume's uuid, once paired */
  peer: string | null;
  /**
   * primary: what the volume held when its last session closed in order (uuid, layer chain,
   * active layer content ID), null while a session has it open. A different value at the next
   * open means something wrote the volume without replication seeing it.
   */
  content?: string | null;
}

export const ROLE_SLOTS = ['replication.0', 'replication.1'] as const;
/** A side that never replicated holds this generation: it is in nobody's history. */
export const FRESH_GENERATION = '0000000000000000';
const MAX_ROLE_BYTES = 16 << 10;

const roleSlots = new RecordSlots<RoleState>({
  names: ROLE_SLOTS,
  format: 'replicationRole',
  label: 'replication role',
  magic: MAGIC_REPLICATION_ROLE,
  kind: KIND_REPLICATION_ROLE,
  maxBytes: MAX_ROLE_BYTES,
  decode: (parsed) => decodeRole(parsed),
});

const GEN_ID = /^[0-9a-f]{16}$/;

function decodeRole(x: unknown): RoleState {
  const bad = (what: string) => new StrataError('corrupt', `The replication role record is malformed (${what}).`);
  if (typeof x !== 'object' || x === null) throw bad('not an object');
  const o = x as Record<string, unknown>;
  if (o.role !== 'primary' && o.role !== 'secondary' && o.role !== 'none') throw bad('role');
  const g = o.gen as Record<string, unknown> | null;
  if (typeof g !== 'object' || g === null || typeof g.current !== 'string' || !GEN_ID.test(g.current)) throw bad('gen');
  const h = g.history;
  if (!Array.isArray(h) || h.length > LIMITS.maxHistory || h.some((v) => typeof v !== 'string' || !GEN_ID.test(v))) throw bad('history');
  if (typeof o.consistent !== 'boolean') throw bad('consistent');
  const snap = o.resyncSnapshot;
  if (snap !== null && (typeof snap !== 'string' || snap.length > 256)) throw bad('resyncSnapshot');
  const peer = o.peer;
  if (peer !== null && (typeof peer !== 'string' || peer.length > 64)) throw bad('peer');
  const content = o.content ?? null;
  if (content !== null && (typeof content !== 'string' || content.length > 8192)) throw bad('content');
  return { role: o.role, gen: { current: g.current, history: h as string[] }, consistent: o.consistent, resyncSnapshot: snap as string | null, peer: peer as string | null, content };
}

export function newGenerationId(): string {
  let id: string;
  do id = Array.from(globalThis.crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
  while (id === FRESH_GENERATION);
  return id;
}

/** `gen` with a new current generation (the old one first in the history). */
export function nextGeneration(gen: Generations): Generations {
  const history = gen.current === FRESH_GENERATION ? gen.history.slice() : [gen.current, ...gen.history];
  return { current: newGenerationId(), history: history.slice(0, LIMITS.maxHistory) };
}

export type GenerationVerdict = 'same' | 'primary-ahead' | 'secondary-ahead' | 'fresh-secondary' | 'split-brain';

/** How a primary's data stands to its secondary's (see the file comment). */
export function compareGenerations(primary: Generations, secondary: Generations): GenerationVerdict {
  if (secondary.current === FRESH_GENERATION) return 'fresh-secondary';
  if (primary.current === secondary.current) return 'same';
  if (primary.history.includes(secondary.current)) return 'primary-ahead';
  if (secondary.history.includes(primary.current)) return 'secondary-ahead';
  return 'split-brain';
}

/** The refusal for a verdict that does not let a session start, else null. */
export function verdictError(v: GenerationVerdict, primaryLabel: string, secondaryLabel: string): StrataError | null {
  if (v === 'secondary-ahead') {
    return new StrataError('split-brain', `The secondary ${secondaryLabel} was promoted and written after ${primaryLabel} last replicated to it: ${primaryLabel} is stale. Demote ${primaryLabel} and fail back with \`stratadisk resync\` from the secondary; nothing was copied.`);
  }
  if (v === 'split-brain') {
    return new StrataError('split-brain', `Split brain: ${primaryLabel} and ${secondaryLabel} were both written while apart, and neither holds what the other wrote. Nothing was copied or merged. Choose the side to keep, then run \`stratadisk resync KEEP OTHER\` (it copies only the segments that differ) and replicate again.`);
  }
  return null;
}

/** What a volume holds, as far as a content check needs: uuid, layer chain, active layer content ID. */
export function contentBinding(volume: { info(): { uuid: string; chain: readonly string[]; active: { contentId: string | null } } }): string {
  const i = volume.info();
  return JSON.stringify([i.uuid, i.chain, i.active.contentId]);
}

/** A fresh side: no role, the fresh generation. */
export function freshRole(): RoleState {
  return { role: 'none', gen: { current: FRESH_GENERATION, history: [] }, consistent: false, resyncSnapshot: null, peer: null };
}

/** The role record of one namespace; commits run one after another. */
export class RoleRecord {
  private queue: Promise<void> = Promise.resolve();

  private constructor(
    private readonly ns: StoreNamespace,
    private generation: number,
    private value: RoleState,
  ) {}

  /** Read the newest valid generation; absent is a fresh role. Damage is `corrupt` (never a silent fresh role: a stale secondary would look new). */
  static async open(ns: StoreNamespace): Promise<RoleRecord> {
    const slots = await roleSlots.readAll(ns);
    const best = newestValid(slots);
    const newer = newerUnsupported(slots, best);
    if (newer) throw newer.error!;
    if (!best && slots.some((s) => s.state === 'invalid')) {
      throw new StrataError('corrupt', `The replication role record of this volume (replication.0/1) is damaged. Its data generations are unknown, so it cannot be paired safely: run \`stratadisk resync\` against its peer to repair, or delete replication.0 and replication.1 to treat it as a fresh secondary (a full copy).`);
    }
    return new RoleRecord(ns, best?.generation ?? 0, best?.value ?? freshRole());
  }

  get state(): RoleState {
    return structuredClone(this.value);
  }

  /** Write `change(state)` durably; resolves when it is on the store. */
  update(change: (s: RoleState) => RoleState): Promise<RoleState> {
    const run = this.queue.then(async () => {
      const next = change(structuredClone(this.value));
      const payload = new TextEncoder().encode(JSON.stringify(next));
      if (payload.length > MAX_ROLE_BYTES) throw new StrataError('invalid-argument', 'The replication role record grew past its limit.');
      await roleSlots.write(this.ns, this.generation + 1, payload, { truncate: true, syncNewSlot: true });
      this.generation++;
      this.value = next;
      return structuredClone(next);
    });
    this.queue = run.then(
      () => {},
      () => {},
    );
    return run;
  }
}
