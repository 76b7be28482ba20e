import type { Manifest } from '../format/manifest.js';
import type { StoreNamespace } from '../store/store.js';
import { Layer, SLOT_ZERO } from './layer.js';
import { children, cloneManifest, collapsedManifest, isReferenced, layerRecord } from './tree.js';

/** What merges need of a volume (its core, core.ts, is one). Callers hold every block. */
export interface MergeContext {
  readonly ns: StoreNamespace;
  readonly blockSize: number;
  readonly layers: Map<string, Layer>;
  readonly manifest: Manifest;
  commit(m: Manifest): Promise<void>;
  dropLayerFiles(id: string): Promise<void>;
}

/** Blocks copied per batch during a merge: bounds memory, keeps reads coalesced. */
const MERGE_BATCH_BYTES = 8 << 20;

/**
 * Remove layers nobody needs any more. A sealed layer that is neither a snapshot nor active
 * is dropped when it has no children, and merged with its child when it has exactly one
 * (with two or more it stays, shared by both branches). Each step is crash-safe: the names were
 * already removed by a committed manifest, and a merge only ever changes layers in ways that
 * leave the child's view unchanged, so an interrupted run is simply repeated at the next open.
 */
export async function collectGarbage(ctx: MergeContext): Promise<void> {
  for (;;) {
    const m = ctx.manifest;
    const victim = m.layers.find((l) => l.sealed && !isReferenced(m, l.id) && children(m, l.id).length <= 1);
    if (!victim) return;
    const kids = children(m, victim.id);
    if (kids.length === 0) {
      const next = cloneManifest(m);
      next.layers = next.layers.filter((l) => l.id !== victim.id);
      await ctx.commit(next);
      await ctx.dropLayerFiles(victim.id);
    } else {
      await mergeIntoChild(ctx, victim.id, kids[0]!.id);
    }
  }
}

/**
 * Merge layer `x` into its only child `c` so that c's view is unchanged and x disappears.
 * Copies the smaller side: either x's blocks that c lacks go up into c, or c's blocks go down
 * into x, which then takes c's place (its snapshots, its children, the active role).
 */
async function mergeIntoChild(ctx: MergeContext, xId: string, cId: string): Promise<void> {
  const x = ctx.layers.get(xId)!;
  const c = ctx.layers.get(cId)!;
  await c.flush();
  const upCost = x.dataBlocks + x.zeroBlocks;
  const downCost = c.dataBlocks + c.zeroBlocks;
  const up = upCost <= downCost;
  // The layer being written loses its recorded content ID first: until the merge commits, its
  // content is in flux (an open after a crash here finishes the merge and records the new ID).
  const target = layerRecord(ctx.manifest, up ? cId : xId);
  if (target.contentId !== null) {
    const pre = cloneManifest(ctx.manifest);
    layerRecord(pre, target.id).contentId = null;
    await ctx.commit(pre);
  }
  if (up) {
    await copyEntries(ctx.blockSize, x, c, (block) => c.slot(block) === -1);
    await ctx.commit(collapsedManifest(ctx.manifest, 'up', xId, cId, c.contentId()));
    await ctx.dropLayerFiles(xId);
  } else {
    // Blocks an interrupted run (or an online consolidation) already copied are skipped.
    await copyEntries(ctx.blockSize, c, x, (block) => !sameEntry(c, x, block));
    await ctx.commit(collapsedManifest(ctx.manifest, 'down', xId, cId, x.contentId()));
    await ctx.dropLayerFiles(cId);
  }
}

/** Does `dst` hold exactly `src`'s entry for `block` (both known-zero, or data with equal XXH3-128)? */
export function sameEntry(src: Layer, dst: Layer, block: number): boolean {
  const s = src.slot(block);
  const d = dst.slot(block);
  if (s === SLOT_ZERO || d === SLOT_ZERO) return s === d;
  if (s < 0 || d < 0) return false;
  const a = src.hash(block)!;
  const b = dst.hash(block)!;
  for (let i = 0; i < 16; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Copy `src`'s entries that pass `want` into `dst` (dst wins nothing: entries overwrite), then
 * flush dst. Each block keeps its stored checksum (a damaged block stays detectably damaged);
 * consecutive source slots are read, and consecutive new slots written, with one call each.
 */
async function copyEntries(blockSize: number, src: Layer, dst: Layer, want: (block: number) => boolean): Promise<void> {
  const all: number[] = [];
  for (const [block] of src.entries()) if (want(block)) all.push(block);
  all.sort((a, b) => a - b);
  const perBatch = Math.max(1, Math.min(all.length, Math.floor(MERGE_BATCH_BYTES / blockSize)));
  const buf = new Uint8Array(perBatch * blockSize);
  const hashes = new Uint8Array(perBatch * 16);
  for (let i = 0; i < all.length; i += perBatch) {
    const blocks = all.slice(i, i + perBatch);
    const index: number[] = [];
    const zero = new Uint8Array(blocks.length);
    const reads: Promise<void>[] = [];
    for (let k = 0; k < blocks.length; ) {
      index.push(k);
      const s = src.slot(blocks[k]!);
      if (s === SLOT_ZERO) {
        zero[k++] = 1;
        continue;
      }
      let e = k + 1;
      while (e < blocks.length && src.slot(blocks[e]!) === s + (e - k)) index.push(e++);
      for (let q = k; q < e; q++) hashes.set(src.hash(blocks[q]!)!, q * 16);
      reads.push(src.data.readInto(s * blockSize, buf.subarray(k * blockSize, e * blockSize)));
      k = e;
    }
    await Promise.all(reads);
    await dst.putBlocks({ blocks, index, zero, data: buf, hashes });
  }
  await dst.flush();
}
