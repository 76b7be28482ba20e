/**
 * The store's chunk catalogue: the union of every finished pack's `.idx` (a pack is finished
 * when its `.idx` exists). Publish looks chunks up here to upload only what the store lacks.
 */
import { isStrataError, StrataError } from '../errors.js';
import type { ObjectStore } from './object-store.js';
import { HEX_ID, indexKey, toHex } from './object-names.js';
import { decodePackIndex, type PackEntry } from './pack-index.js';

export interface ChunkLocation {
  /** pack id, hex */
  pack: string;
  offset: number;
  stored: number;
  raw: number;
  codec: number;
}

export interface PackListing {
  /** pack id → size of `.pack` */
  packs: Map<string, number>;
  /** pack ids with an `.idx` */
  indexes: Set<string>;
  /** keys under packs/ that are neither (left alone; listed so gc can report them) */
  other: string[];
}

/** Every object under packs/, sorted out. */
export async function listPacks(objects: ObjectStore, signal?: AbortSignal): Promise<PackListing> {
  const packs = new Map<string, number>();
  const indexes = new Set<string>();
  const other: string[] = [];
  for await (const o of objects.list('packs/', signal)) {
    const m = /^packs\/([0-9a-f]{64})\.(pack|idx)$/.exec(o.key);
    if (m && m[2] === 'pack') packs.set(m[1]!, o.size);
    else if (m) indexes.add(m[1]!);
    else other.push(o.key);
  }
  return { packs, indexes, other };
}

export class ChunkCatalog {
  readonly chunks = new Map<string, ChunkLocation>();
  readonly packs = new Set<string>();
  /** indexes that could not be read (their packs are not used for dedup) */
  readonly damaged: { pack: string; error: StrataError }[] = [];

  add(pack: string, entries: readonly PackEntry[]): void {
    if (!HEX_ID.test(pack)) throw new StrataError('invalid-argument', `bad pack id ${pack}`);
    this.packs.add(pack);
    for (const e of entries) {
      const id = toHex(e.id);
      if (!this.chunks.has(id)) this.chunks.set(id, { pack, offset: e.offset, stored: e.stored, raw: e.raw, codec: e.codec });
    }
  }

  get(id: string): ChunkLocation | undefined {
    return this.chunks.get(id);
  }

  /** Load every finished pack's index, `parallel` GETs at a time. */
  static async load(objects: ObjectStore, options: { signal?: AbortSignal; parallel?: number; listing?: PackListing } = {}): Promise<ChunkCatalog> {
    const cat = new ChunkCatalog();
    const listing = options.listing ?? (await listPacks(objects, options.signal));
    const finished = [...listing.indexes].filter((p) => listing.packs.has(p)).sort();
    const loaded: (PackEntry[] | undefined)[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < finished.length) {
        const k = next++;
        const p = finished[k]!;
        const bytes = await objects.get(indexKey(p), undefined, options.signal);
        if (bytes === null) continue; // removed meanwhile: not finished any more
        try {
          loaded[k] = await decodePackIndex(bytes, listing.packs.get(p)!, `${objects.description}: ${indexKey(p)}`);
        } catch (e) {
          if (!isStrataError(e, 'corrupt') && !isStrataError(e, 'checksum-mismatch')) throw e;
          cat.damaged.push({ pack: p, error: e });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.parallel ?? 8, Math.max(1, finished.length)) }, worker));
    // added in pack order, so a chunk held by two packs always resolves to the same one
    finished.forEach((p, k) => loaded[k] && cat.add(p, loaded[k]));
    return cat;
  }
}
