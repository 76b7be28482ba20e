/**
 * The shadow catalog: which diff areas exist, oldest first, and the state of each shadow copy.
 * Two slots (`shadows.0`, `shadows.1`) of one checksummed record each (src/format/record-slots.ts);
 * a commit writes the next generation into the other slot and flushes it, so a torn commit
 * leaves the previous one.
 */
import { StrataError } from '../errors.js';
import { CATALOG_FORMAT, FORMATS, KIND_SHADOW_CATALOG, MAGIC_SHADOW_CATALOG, newerVersion } from '../format/magic.js';
import { RecordSlots, anyWritten, newerUnsupported, newestValid } from '../format/record-slots.js';
import { corrupt, SHADOW_DAMAGE_ADVICE } from '../format/record.js';
import type { StoreNamespace } from '../store/store.js';
import { checkShadowBlockSize } from './diff-area.js';

export { CATALOG_FORMAT, MAGIC_SHADOW_CATALOG };
/** The catalog's JSON `version` (its record carries the same number). */
export const CATALOG_VERSION = FORMATS.shadowCatalog.writes;
export const CATALOG_SLOTS = ['shadows.0', 'shadows.1'] as const;
const MAX_CATALOG_BYTES = 4 << 20;
/** VSS allows 64 shadow copies per volume; so do we (areas kept for older copies count too). */
export const MAX_AREAS = 64;
export const SHADOW_NAME = /^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$/;
const AREA_ID = /^S[0-9]{6,12}$/;

/** What happens when a shadow copy's diff area cannot take a preserved block. */
export type OnFull = 'drop' | 'fail';
/**
 * live: listed and readable. deleted: no longer listed; its area stays while an older live copy
 * reads through it. lost: dropped because its diff area was full; reading it is an error.
 */
export type AreaState = 'live' | 'deleted' | 'lost';

export interface AreaRecord {
  id: string;
  name: string;
  created: string;
  state: AreaState;
  onFull: OnFull;
  /** size limit of the diff area in bytes, or null for none (the store's quota still applies) */
  maxBytes: number | null;
  /** the area stopped receiving preserved blocks (it filled up under policy 'drop') */
  closed?: boolean;
  /** batch records known durable at the last commit: a log that ends sooner is damaged */
  records?: number;
}

export interface Catalog {
  format: typeof CATALOG_FORMAT;
  version: number;
  blockSize: number;
  volumeSize: number;
  nextId: number;
  /** a lazy writer has preservations not yet flushed (see ShadowVolumeOptions.durability) */
  dirty?: boolean;
  /** oldest first */
  areas: AreaRecord[];
}

export function areaId(n: number): string {
  return `S${String(n).padStart(6, '0')}`;
}

export function areaStoreName(id: string): string {
  return `${id}.diff`;
}

export function validateCatalog(c: unknown, what = 'The shadow catalog'): asserts c is Catalog {
  const bad = (d: string): never => {
    throw corrupt(what, d, SHADOW_DAMAGE_ADVICE);
  };
  if (typeof c !== 'object' || c === null) bad('not an object');
  const x = c as Record<string, unknown>;
  if (x.format !== CATALOG_FORMAT) bad('wrong format tag');
  if (x.version !== CATALOG_VERSION) throw newerVersion('shadowCatalog', what, x.version);
  try {
    checkShadowBlockSize(x.blockSize as number);
  } catch {
    bad('block size');
  }
  if (!Number.isSafeInteger(x.volumeSize) || (x.volumeSize as number) < 0) bad('volume size');
  if (!Number.isSafeInteger(x.nextId) || (x.nextId as number) < 1) bad('id counter');
  if (!Array.isArray(x.areas) || x.areas.length > MAX_AREAS) bad('area list');
  if (x.dirty !== undefined && typeof x.dirty !== 'boolean') bad('dirty flag');
  const ids = new Set<string>();
  const names = new Set<string>();
  let prev = 0;
  for (const a of x.areas as unknown[]) {
    const r = a as AreaRecord;
    if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !AREA_ID.test(r.id) || ids.has(r.id)) bad('bad area entry');
    const n = Number(r.id.slice(1));
    if (n <= prev || n >= (x.nextId as number)) bad(`area ${r.id} is out of order`);
    prev = n;
    if (typeof r.name !== 'string' || !SHADOW_NAME.test(r.name) || typeof r.created !== 'string') bad(`bad name of ${r.id}`);
    if (r.state !== 'live' && r.state !== 'deleted' && r.state !== 'lost') bad(`bad state of ${r.id}`);
    if (r.onFull !== 'drop' && r.onFull !== 'fail') bad(`bad policy of ${r.id}`);
    if (r.closed !== undefined && typeof r.closed !== 'boolean') bad(`bad flags of ${r.id}`);
    if (r.records !== undefined && !(Number.isSafeInteger(r.records) && r.records >= 0)) bad(`bad record count of ${r.id}`);
    if (r.state === 'lost' && !r.closed) bad(`lost area ${r.id} is not closed`);
    if (!(r.maxBytes === null || (Number.isSafeInteger(r.maxBytes) && r.maxBytes > 0))) bad(`bad size limit of ${r.id}`);
    if (r.state === 'live') {
      if (names.has(r.name)) bad(`two live shadow copies named ${r.name}`);
      names.add(r.name);
    }
    ids.add(r.id);
  }
}

const catalogSlots = new RecordSlots<Catalog>({
  names: CATALOG_SLOTS,
  format: 'shadowCatalog',
  label: 'shadow catalog',
  magic: MAGIC_SHADOW_CATALOG,
  kind: KIND_SHADOW_CATALOG,
  maxBytes: MAX_CATALOG_BYTES,
  decode(c, _version, name) {
    validateCatalog(c, name);
    return c;
  },
});

/** The two catalog slots of a shadow namespace. */
export class CatalogStore {
  private constructor(
    private readonly ns: StoreNamespace,
    public generation: number,
    public catalog: Catalog,
  ) {}

  /** Does either slot hold anything? (Empty slots are a creation that never committed.) */
  static async exists(ns: StoreNamespace): Promise<boolean> {
    for (const name of CATALOG_SLOTS) {
      if (!(await ns.exists(name))) continue;
      const s = await ns.open(name, { readOnly: true });
      const size = s.size;
      await s.close();
      if (size > 0) return true;
    }
    return false;
  }

  static async create(ns: StoreNamespace, catalog: Catalog): Promise<CatalogStore> {
    if (await CatalogStore.exists(ns)) throw new StrataError('exists', 'Shadow copies are already set up here; open them instead.');
    // Both slots exist (not flushed: empty files; the namespace sync makes their names durable).
    await catalogSlots.createEmpty(ns, { flushEach: false });
    const cs = new CatalogStore(ns, 0, catalog);
    await cs.commit(catalog);
    return cs;
  }

  /**
   * The newest valid generation. A slot of a newer format than every valid one is refused
   * (`unsupported`): opening the older generation would roll the catalog back.
   */
  static async open(ns: StoreNamespace): Promise<CatalogStore> {
    const slots = await catalogSlots.readAll(ns);
    if (!anyWritten(slots)) throw new StrataError('not-found', 'No shadow copies here. Create one first (`stratadisk shadow create`).');
    const best = newestValid(slots);
    const newer = newerUnsupported(slots, best);
    if (newer) throw newer.error!;
    if (!best) throw corrupt('The shadow catalog', 'neither slot holds a valid generation', SHADOW_DAMAGE_ADVICE);
    return new CatalogStore(ns, best.generation!, best.value!);
  }

  async commit(next: Catalog): Promise<void> {
    validateCatalog(next, 'The new shadow catalog');
    const gen = this.generation + 1;
    // Written in place, never truncated: a shorter record leaves the older bytes after its checksum.
    await catalogSlots.write(this.ns, gen, new TextEncoder().encode(JSON.stringify(next)));
    this.generation = gen;
    this.catalog = next;
  }
}
