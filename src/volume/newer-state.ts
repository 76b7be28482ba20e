import { layerId, type Manifest, type ManifestSlot } from '../format/manifest.js';
import { ENTRY_SIZE, mapHeaderBytes, scanMapLog } from '../format/map-log.js';
import type { StoreNamespace } from '../store/store.js';
import { dataName, mapName } from './layer.js';
import { readStagingMark } from './staging-mark.js';

/**
 * Did the volume hold newer state than the manifest generation it opened with?
 *
 * The manifest lives in two slots (A/B): opening takes the newest valid one. If the newest slot
 * is lost (deleted, emptied, replaced), the older one opens fine and the volume silently rolls
 * back: snapshots taken since disappear, and a writable open would delete the newer layer files
 * as orphans and write into a layer that was sealed as a snapshot. This module finds the
 * evidence such a loss leaves, and tells it apart from what a crash legitimately leaves behind.
 *
 * The rule, from how the volume writes (volume.ts, merge.ts, remote-base.ts):
 *
 * - Both slot files are created before generation 1 and never deleted or truncated; a commit
 *   only overwrites a slot in place, so a crash leaves the other slot *invalid* (torn), never
 *   missing or empty. A missing slot, an empty one past generation 1, or a valid one holding a
 *   generation other than G-1 (G = the survivor) means a slot was lost or replaced.
 * - A commit that adds a layer creates exactly one layer, `L<nextLayer>`, empty (data size 0,
 *   map = its header record only), before the commit. Any other unknown layer file means
 *   a newer generation existed:
 *     - a layer numbered above `nextLayer`: at least one more commit happened;
 *     - `L<nextLayer>` with data, map entries or a compacted map: it was written, so it was
 *       part of a committed generation (the survivor does not know it).
 *   Unknown layers numbered below `nextLayer` were dropped by a generation the survivor itself
 *   committed (merge, revert, refresh) before a crash cut their deletion short: stale.
 * - A staged change (an import, Volume.staged) builds its layers, numbered from `nextLayer` up,
 *   before the commit that names them, under a mark (`staging.mark`, staging-mark.ts) written
 *   first and deleted after: while the mark says so, unknown layers from its number up are that
 *   change's leftovers: stale.
 * - A compaction writes map generation g+1 of a layer (the same entries as its map g), then
 *   commits, then deletes map g. Map files below the manifest's `mapGen` are stale leftovers;
 *   map `mapGen+1` is a crashed compaction when each valid entry it holds equals the layer's
 *   current entry, and newer state otherwise (writes went to it after its commit); any map
 *   above `mapGen+1` needs two compactions, so a newer generation existed.
 *
 * A slot whose record is torn or damaged (invalid) is not evidence by itself: a crash during a
 * commit leaves exactly that. So a newest slot damaged in place right after a snapshot with no
 * writes since cannot be told from that snapshot's crashed commit; everything else can.
 */
export interface NewerState {
  /** the file that shows it (a manifest slot or a layer file) */
  file: string;
  /** the layer it concerns, when it concerns one */
  layer?: string;
  message: string;
}

/** A layer's current entries, to compare a leftover compacted map with (a Layer fits). */
export interface EntryLookup {
  slot(block: number): number;
  hash(block: number): Uint8Array | null;
}

export interface NewerStateScan {
  /** evidence that newer state existed; empty when the volume is what it last committed */
  evidence: NewerState[];
  /** layer files that hold nothing the volume ever committed beyond `generation`: safe to delete */
  stale: string[];
}

const LAYER_FILE = /^(L[0-9]{6,12})\.(?:(data)|map|([0-9]{1,9})\.map)$/;

interface LayerFiles {
  data: boolean;
  /** map generations present (0 = `<id>.map`) */
  maps: number[];
}

/** Group the namespace's layer files by layer id. */
export function layerFiles(names: readonly string[]): Map<string, LayerFiles> {
  const out = new Map<string, LayerFiles>();
  for (const name of names) {
    const m = LAYER_FILE.exec(name);
    if (!m) continue;
    const id = m[1]!;
    let f = out.get(id);
    if (!f) out.set(id, (f = { data: false, maps: [] }));
    if (m[2]) f.data = true;
    else f.maps.push(m[3] === undefined ? 0 : Number(m[3]));
  }
  for (const f of out.values()) f.maps.sort((a, b) => a - b);
  return out;
}

/** Evidence from the manifest slots alone (no file is read). */
export function slotEvidence(generation: number, slots: readonly ManifestSlot[]): NewerState[] {
  // Generation g lives in slot g % 2, so the survivor's partner held generation - 1.
  const partner = slots[(generation + 1) % 2];
  if (!partner || slots.length !== 2) return [];
  const lost = `the generation after ${generation} (the newest one) may have been lost with it`;
  if (partner.state === 'missing') {
    return [{ file: partner.name, message: `${partner.name} is missing. A volume always keeps both manifest files, so ${lost}.` }];
  }
  if (partner.state === 'empty' && generation >= 2) {
    return [{ file: partner.name, message: `${partner.name} is empty although the volume is at generation ${generation}: ${lost}.` }];
  }
  if (partner.state === 'valid' && partner.generation !== generation - 1) {
    return [{ file: partner.name, message: `${partner.name} holds generation ${partner.generation}, where generation ${generation - 1} belongs: it was replaced by another copy, and ${lost}.` }];
  }
  return [];
}

/**
 * Look for evidence of newer state than manifest `m` (generation `generation`), and for layer
 * files that are safe to delete. Reads file sizes and leftover map logs; writes nothing.
 * `current(id)` gives the entries of a layer the manifest names (for leftover compactions);
 * without it such a leftover counts as evidence.
 */
export async function scanForNewerState(
  ns: StoreNamespace,
  m: Manifest,
  generation: number,
  slots: readonly ManifestSlot[],
  current: (id: string) => EntryLookup | undefined,
): Promise<NewerStateScan> {
  const evidence = slotEvidence(generation, slots);
  const stale: string[] = [];
  const known = new Map(m.layers.map((l) => [l.id, l]));
  const staged = await readStagingMark(ns);
  const where = `the surviving manifest (generation ${generation})`;
  for (const [id, files] of layerFiles(await ns.list())) {
    const rec = known.get(id);
    if (rec) {
      const gen = rec.mapGen ?? 0;
      for (const g of files.maps) {
        if (g === gen) continue;
        const name = mapName(id, g);
        if (g < gen) stale.push(name);
        else if (g === gen + 1 && (await compactionLeftover(ns, name, id, m.blockSize, current(id)))) stale.push(name);
        else evidence.push({ file: name, layer: id, message: `${name} is a newer map of layer ${id} than ${where} names (map generation ${gen}), with entries that map does not hold: a newer generation committed it.` });
      }
      continue;
    }
    const names = [...(files.data ? [dataName(id)] : []), ...files.maps.map((g) => mapName(id, g))];
    const n = Number(id.slice(1));
    // From `staged` up: a staged change (an import) that never committed left them (staging-mark.ts).
    if (n < m.nextLayer || (staged !== null && n >= staged)) {
      stale.push(...names);
      continue;
    }
    if (n === m.nextLayer) {
      const held = await heldBy(ns, id, files, m.blockSize);
      if (held === null) {
        stale.push(...names);
        continue;
      }
      evidence.push({ file: names[0]!, layer: id, message: `layer ${id} is not named by ${where}, but it holds ${held}: a newer generation made it part of the volume and was then lost.` });
      continue;
    }
    evidence.push({
      file: names[0]!,
      layer: id,
      message: `layer ${id} (${names.join(', ')}) is not named by ${where}, and it is newer than the ${layerId(m.nextLayer)} that generation would create next: it belongs to a newer generation that was lost.`,
    });
  }
  return { evidence, stale };
}

/**
 * What an unknown `L<nextLayer>` holds, described; null when it is what a commit that never
 * completed leaves (an empty data file and a map holding at most its header record).
 */
async function heldBy(ns: StoreNamespace, id: string, files: LayerFiles, blockSize: number): Promise<string | null> {
  const held: string[] = [];
  if (files.data) {
    const size = await sizeOf(ns, dataName(id));
    if (size > 0) held.push(`${size} bytes of data`);
  }
  for (const g of files.maps) {
    const size = await sizeOf(ns, mapName(id, g));
    if (g > 0) held.push(`a compacted map (${mapName(id, g)})`);
    else if (size > mapHeaderBytes({ layer: id, blockSize })) held.push(`map entries (${mapName(id)} is ${size} bytes)`);
  }
  return held.length === 0 ? null : held.join(' and ');
}

async function sizeOf(ns: StoreNamespace, name: string): Promise<number> {
  const s = await ns.open(name, { readOnly: true });
  try {
    return s.size;
  } finally {
    await s.close();
  }
}

/** Is map log `name` a compaction of layer `id` that never committed: every valid entry equal to the layer's current one? */
async function compactionLeftover(ns: StoreNamespace, name: string, id: string, blockSize: number, now: EntryLookup | undefined): Promise<boolean> {
  if (!now) return false;
  const store = await ns.open(name, { readOnly: true });
  let same = true;
  try {
    const scan = await scanMapLog(store, (packed, count) => {
      const v = new DataView(packed.buffer, packed.byteOffset, packed.byteLength);
      for (let i = 0; i < count && same; i++) {
        const at = i * ENTRY_SIZE;
        const block = v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
        const slot = v.getInt32(at + 8, true);
        if (now.slot(block) !== slot) same = false;
        else if (slot >= 0) {
          const h = now.hash(block);
          for (let k = 0; k < 16 && same; k++) if (!h || h[k] !== packed[at + 12 + k]) same = false;
        }
      }
    });
    if (scan.header && (scan.header.layer !== id || scan.header.blockSize !== blockSize)) return false;
  } finally {
    await store.close();
  }
  return same;
}
