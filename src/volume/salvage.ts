import { StrataError } from '../errors.js';
import { checkBlockSize, readManifestSlots, type Manifest, type ManifestSlot } from '../format/manifest.js';
import { SLOT_ZERO, scanMapLog } from '../format/map-log.js';
import type { StoreNamespace } from '../store/store.js';
import { loadKernels } from '../wasm/index.js';
import { mismatchedBlocks } from './check.js';
import { dataName, mapName } from './layer.js';
import { layerFiles, scanForNewerState, type NewerState } from './newer-state.js';
import { SalvageLayer, type SalvageLayerInfo } from './salvage-layer.js';
import { chainIds } from './tree.js';

/** Bytes read per batch: bounds memory, keeps reads coalesced. */
const BATCH_BYTES = 8 << 20;
const PAGE_BITS = 9;
const PAGE = 1 << PAGE_BITS;

/** A byte range of a view and why it is not (certainly) what the volume held. */
export interface SalvageRange {
  offset: number;
  length: number;
  /** the layer the range was to come from (or the one whose loss makes it uncertain) */
  layer: string;
  reason: string;
}

/**
 * One image salvage can write: a snapshot, the live view, a layer the surviving manifest does
 * not know stacked on the live view (`newer`), or a layer on its own (`layer`: only the blocks
 * it holds; used for newer layers and when no manifest is readable).
 */
export interface SalvageView {
  kind: 'snapshot' | 'live' | 'newer' | 'layer';
  /** snapshot name, "live", or the layer id */
  name: string;
  /** file name for it (safe: letters, digits and . _ + : -) */
  file: string;
  size: number;
  /** layers top first; null where a layer is missing altogether */
  chain: (SalvageLayer | null)[];
  /** ids matching `chain` */
  layerIds: string[];
  note?: string;
}

export interface SalvageViewResult {
  /** bytes of verified data written */
  dataBytes: number;
  /** ranges written as zeros because their data could not be read or failed its checksum */
  zeroed: SalvageRange[];
  /** ranges written from the best knowledge left, which may not be what the view last held (lost map records) */
  uncertain: SalvageRange[];
}

/** Everything salvage found before exporting anything. */
export interface SalvageSurvey {
  /** the manifest generation used, or null when no manifest slot is readable */
  manifest: { slot: string; generation: number } | null;
  slots: { name: string; state: ManifestSlot['state']; generation?: number; problem?: string }[];
  /** evidence of newer state than that generation (see newer-state.ts) */
  newerState: NewerState[];
  layers: SalvageLayerInfo[];
  blockSize: number | null;
  /** problems that concern the volume as a whole */
  problems: string[];
}

/**
 * Read a damaged volume as far as it can be read, for `stratadisk salvage`. It never writes to
 * the volume and never stops at damage: each view's blocks are resolved through whatever the
 * layers' maps still say, each data block is read and verified against its stored XXH3-128,
 * and what cannot be read (or is uncertain) is reported by byte range instead of failing.
 */
export class Salvage {
  private constructor(
    readonly survey: SalvageSurvey,
    readonly views: SalvageView[],
    private readonly layers: SalvageLayer[],
    private readonly remote: string | null,
  ) {}

  static async open(ns: StoreNamespace): Promise<Salvage> {
    await loadKernels();
    const slots = await readManifestSlots(ns);
    let best: ManifestSlot | null = null;
    for (const s of slots) if (s.state === 'valid' && (!best || s.generation! > best.generation!)) best = s;
    const names = await ns.list();
    const files = layerFiles(names);
    const survey: SalvageSurvey = {
      manifest: best ? { slot: best.name, generation: best.generation! } : null,
      slots: slots.map((s) => ({ name: s.name, state: s.state, ...(s.generation !== undefined ? { generation: s.generation } : {}), ...(s.error ? { problem: s.error.message } : {}) })),
      newerState: [],
      layers: [],
      blockSize: best?.manifest!.blockSize ?? null,
      problems: [],
    };
    const layers: SalvageLayer[] = [];
    const views: SalvageView[] = [];
    const newer = slots.find((s) => s.state === 'unsupported' && (!best || s.generation! > best.generation!));
    if (newer) survey.problems.push(`${newer.name} holds generation ${newer.generation} in a newer format this stratadisk cannot read; upgrade stratadisk and salvage again to get that generation.`);
    if (!best) {
      survey.problems.push(files.size === 0 ? 'No manifest slot is readable and there are no layer files: nothing to salvage.' : 'No manifest slot is readable: each layer is exported on its own (which snapshot each belonged to is unknown).');
      for (const [id, f] of files) {
        const blockSize = await guessBlockSize(ns, id, f.maps);
        if (blockSize === null) {
          survey.problems.push(`Layer ${id}: no readable map header, so its block size is unknown; not exported.`);
          continue;
        }
        const map = f.maps.length > 0 ? mapName(id, f.maps[f.maps.length - 1]!) : null;
        const layer = await SalvageLayer.read(ns, id, blockSize, map, f.data ? dataName(id) : null, null);
        layers.push(layer);
        views.push(layerView(layer, layer.extentBlocks * blockSize));
      }
      survey.layers = layers.map((l) => l.info);
      return new Salvage(survey, views, layers, null);
    }
    const m = best.manifest!;
    const byId = new Map<string, SalvageLayer>();
    try {
      for (const r of m.layers) {
        const f = files.get(r.id);
        const gen = r.mapGen ?? 0;
        let map: string | null = f?.maps.includes(gen) ? mapName(r.id, gen) : null;
        if (!map && f && f.maps.length > 0) {
          // The named map is gone (a compaction the surviving manifest never heard of deleted it): use the newest one left.
          map = mapName(r.id, f.maps[f.maps.length - 1]!);
          survey.problems.push(`Layer ${r.id}: its map ${mapName(r.id, gen)} is missing; read ${map} instead (newer state than the manifest records).`);
        }
        const layer = await SalvageLayer.read(ns, r.id, m.blockSize, map, f?.data ? dataName(r.id) : null, r.sealed ? r.contentId : null);
        layers.push(layer);
        byId.set(r.id, layer);
      }
      const scan = await scanForNewerState(ns, m, best.generation!, slots, (id) => byId.get(id));
      survey.newerState = scan.evidence;
      const chainOf = (top: string) => chainIds(m, top);
      for (const s of m.snapshots) views.push(chainView('snapshot', s.name, `snapshot-${s.name}.raw`, m, chainOf(s.layer), byId));
      views.push(chainView('live', 'live', 'live.raw', m, chainOf(m.active), byId));
      // Layers the surviving manifest does not know but newer generations wrote: each on its own, and on the live view.
      const live = chainOf(m.active);
      for (const e of scan.evidence) {
        if (!e.layer || !e.file.startsWith(e.layer + '.')) continue;
        const f = files.get(e.layer)!;
        const known = byId.has(e.layer);
        const map = known ? e.file : f.maps.length > 0 ? mapName(e.layer, f.maps[f.maps.length - 1]!) : null;
        const layer = await SalvageLayer.read(ns, e.layer, m.blockSize, map, f.data ? dataName(e.layer) : null, null);
        layers.push(layer);
        const tag = known ? e.file.replace(/\.map$/, '') : e.layer;
        views.push({ ...layerView(layer, m.size), name: tag, file: `layer-${tag}.raw` });
        if (!known) {
          const view = chainView('newer', tag, `newer-${tag}-on-live.raw`, m, live, byId);
          view.chain.unshift(layer);
          view.layerIds.unshift(e.layer);
          view.note = `Layer ${e.layer} is not in the surviving manifest; its parent was recorded only in the lost generation. This image assumes it was stacked on the live view, as a snapshot leaves it (true unless the lost change was a revert): only the ranges ${e.layer} holds are certain to be newer.`;
          views.push(view);
        }
      }
    } catch (e) {
      for (const l of layers) await l.close();
      throw e;
    }
    survey.layers = layers.map((l) => l.info);
    return new Salvage(survey, views, layers, m.remote?.url ?? null);
  }

  /** Bytes of data blocks `view` would read (the progress total). */
  dataBytes(view: SalvageView): number {
    let n = 0;
    this.resolve(view, (_block, _i, slot) => {
      if (slot >= 0) n++;
    });
    return n * (this.survey.blockSize ?? view.chain.find((l) => l)?.blockSize ?? 0);
  }

  /**
   * Write `view` through `write` (ascending offsets, only ranges holding data: the target is
   * expected to read as zeros elsewhere, like a new sparse file). Data that cannot be read or
   * fails its checksum is left as zeros and listed. Throws `aborted` when `signal` fires.
   */
  async exportView(view: SalvageView, write: (offset: number, data: Uint8Array) => Promise<void>, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<SalvageViewResult> {
    const bs = view.chain.find((l) => l)?.blockSize ?? this.survey.blockSize!;
    const zeroed = new RangeList();
    const uncertain = new RangeList();
    const top = view.chain.findIndex((l) => l === null || !l.complete);
    const lost = top >= 0 ? { layer: view.layerIds[top]!, reason: lostReason(view.chain[top]!) } : null;
    const fromImage = this.remote && view.kind !== 'layer' ? { layer: 'remote image', reason: `held by the remote image ${this.remote}, which salvage does not fetch` } : null;
    const range = (from: number, to: number) => ({ offset: from * bs, length: Math.min(to * bs, view.size) - from * bs });
    // Blocks no layer holds read as zeros: uncertain below a layer that lost map records; on the image for a remote volume.
    let next = 0;
    const gap = (to: number) => {
      if (to > next) {
        if (lost) uncertain.add({ ...range(next, to), ...lost });
        else if (fromImage) zeroed.add({ ...range(next, to), ...fromImage });
      }
    };
    const held: Held[] = [];
    this.resolve(view, (block, layer, slot) => held.push({ block, layer, slot }));
    const perBatch = Math.max(1, Math.floor(BATCH_BYTES / bs));
    const buf = new Uint8Array(perBatch * bs);
    const want = new Uint8Array(perBatch * 16);
    let dataBytes = 0;
    for (let i = 0; i < held.length; i += perBatch) {
      if (signal?.aborted) throw new StrataError('aborted', 'Salvage was interrupted.');
      const batch = held.slice(i, i + perBatch);
      // Why each block of the batch is written as zeros (undefined: its data is written).
      const why: (string | undefined)[] = batch.map(() => undefined);
      const toRead: number[] = [];
      batch.forEach((h, j) => {
        if (h.slot === SLOT_ZERO) return;
        const layer = view.chain[h.layer]!;
        const id = view.layerIds[h.layer]!;
        if (!layer.readable(h.slot)) why[j] = layer.data ? `${id}.data is cut short (slot ${h.slot} is past its end)` : `${id}.data is missing`;
        else toRead.push(j);
      });
      const failed = await readRuns(view, toRead.map((j) => batch[j]!), buf, bs);
      toRead.forEach((j, k) => want.set(view.chain[batch[j]!.layer]!.hash(batch[j]!.block)!, k * 16));
      const bad = new Set(mismatchedBlocks(buf, bs, toRead.length, (k) => want.subarray(k * 16, k * 16 + 16)));
      toRead.forEach((j, k) => {
        const h = batch[j]!;
        if (failed[k] !== undefined) why[j] = failed[k];
        else if (bad.has(k)) why[j] = `checksum mismatch (slot ${h.slot} of ${view.layerIds[h.layer]}.data)`;
      });
      // Report in block order; write verified blocks, consecutive ones in one call.
      batch.forEach((h, j) => {
        gap(h.block);
        next = h.block + 1;
        if (lost && (h.layer > top || (h.layer === top && !view.chain[h.layer]!.certain(h.block)))) uncertain.add({ ...range(h.block, h.block + 1), ...lost });
        if (why[j] !== undefined) zeroed.add({ ...range(h.block, h.block + 1), layer: view.layerIds[h.layer]!, reason: why[j]! });
      });
      for (let k = 0; k < toRead.length; ) {
        const first = batch[toRead[k]!]!;
        if (why[toRead[k]!] !== undefined) {
          k++;
          continue;
        }
        let e = k + 1;
        while (e < toRead.length && why[toRead[e]!] === undefined && batch[toRead[e]!]!.block === first.block + (e - k)) e++;
        const { offset, length } = range(first.block, first.block + (e - k));
        await write(offset, buf.subarray(k * bs, k * bs + length));
        dataBytes += length;
        k = e;
      }
      onProgress?.(batch.reduce((n, h) => n + (h.slot >= 0 ? bs : 0), 0));
    }
    gap(Math.ceil(view.size / bs));
    return { dataBytes, zeroed: zeroed.ranges, uncertain: uncertain.ranges };
  }

  /** Call `fn` for each block some layer of `view` holds, with the topmost holder, in ascending block order. */
  private resolve(view: SalvageView, fn: (block: number, layer: number, slot: number) => void): void {
    const blocks = Math.ceil(view.size / (view.chain.find((l) => l)?.blockSize ?? this.survey.blockSize ?? 1));
    const owner = new Map<number, Int32Array>();
    const slots = new Map<number, Int32Array>();
    view.chain.forEach((layer, i) => {
      if (!layer) return;
      for (const [block, slot] of layer.entries()) {
        if (block >= blocks) continue;
        const key = block >>> PAGE_BITS;
        let o = owner.get(key);
        if (!o) {
          owner.set(key, (o = new Int32Array(PAGE).fill(-1)));
          slots.set(key, new Int32Array(PAGE));
        }
        const at = block & (PAGE - 1);
        if (o[at] !== -1) continue;
        o[at] = i;
        slots.get(key)![at] = slot;
      }
    });
    for (const key of [...owner.keys()].sort((a, b) => a - b)) {
      const o = owner.get(key)!;
      const s = slots.get(key)!;
      for (let at = 0; at < PAGE; at++) if (o[at] !== -1) fn(key * PAGE + at, o[at]!, s[at]!);
    }
  }

  async close(): Promise<void> {
    for (const l of this.layers) await l.close();
  }
}

function chainView(kind: SalvageView['kind'], name: string, file: string, m: Manifest, ids: string[], byId: Map<string, SalvageLayer>): SalvageView {
  return { kind, name, file, size: m.size, chain: ids.map((id) => byId.get(id) ?? null), layerIds: [...ids] };
}

function layerView(layer: SalvageLayer, size: number): SalvageView {
  return { kind: 'layer', name: layer.id, file: `layer-${layer.id}.raw`, size, chain: [layer], layerIds: [layer.id], note: `Only the blocks layer ${layer.id} itself holds; everything else reads as zeros.` };
}

function lostReason(layer: SalvageLayer | null): string {
  if (!layer) return 'the layer is missing, so which blocks it held is unknown';
  return layer.info.map === null ? 'its map log is missing, so which blocks it held is unknown' : 'records of its map log were lost, so this range may have changed there';
}

function blockLength(block: number, bs: number, size: number): number {
  return Math.min(bs, size - block * bs);
}

interface Held {
  block: number;
  /** index into the view's chain */
  layer: number;
  slot: number;
}

/**
 * Read `toRead` into `buf` (entry k at k * blockSize), consecutive slots of one layer in one
 * call. A run that fails is read again block by block, so one bad sector costs one block.
 * Returns, per entry, why it could not be read (undefined: read).
 */
async function readRuns(view: SalvageView, toRead: Held[], buf: Uint8Array, bs: number): Promise<(string | undefined)[]> {
  const failed: (string | undefined)[] = toRead.map(() => undefined);
  const reads: Promise<void>[] = [];
  for (let k = 0; k < toRead.length; ) {
    let e = k + 1;
    while (e < toRead.length && toRead[e]!.layer === toRead[k]!.layer && toRead[e]!.slot === toRead[k]!.slot + (e - k)) e++;
    const store = view.chain[toRead[k]!.layer]!.data!;
    const [from, to] = [k, e];
    reads.push(
      store.readInto(toRead[from]!.slot * bs, buf.subarray(from * bs, to * bs)).catch(async () => {
        for (let j = from; j < to; j++) {
          try {
            await store.readInto(toRead[j]!.slot * bs, buf.subarray(j * bs, (j + 1) * bs));
          } catch (err) {
            failed[j] = `read failed: ${(err as Error).message}`;
          }
        }
      }),
    );
    k = e;
  }
  await Promise.all(reads);
  return failed;
}

/** Ranges, merged when adjacent with the same layer and reason. */
class RangeList {
  readonly ranges: SalvageRange[] = [];
  add(r: SalvageRange): void {
    const last = this.ranges[this.ranges.length - 1];
    if (last && last.offset + last.length === r.offset && last.layer === r.layer && last.reason === r.reason) last.length += r.length;
    else this.ranges.push({ ...r });
  }
}

/** Block size from a map header of layer `id` (any generation), or null. */
async function guessBlockSize(ns: StoreNamespace, id: string, maps: number[]): Promise<number | null> {
  for (const g of [...maps].reverse()) {
    const store = await ns.open(mapName(id, g), { readOnly: true });
    try {
      const scan = await scanMapLog(store, () => {});
      if (scan.header && scan.header.layer === id && validBlockSize(scan.header.blockSize)) return scan.header.blockSize;
    } catch {
      // try the next one
    } finally {
      await store.close();
    }
  }
  return null;
}

function validBlockSize(n: number): boolean {
  try {
    checkBlockSize(n);
    return true;
  } catch {
    return false;
  }
}
