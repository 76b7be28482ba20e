import { StrataError } from '../errors.js';
import type { Manifest } from '../format/manifest.js';
import { scanBlocks } from '../wasm/index.js';
import type { Layer } from './layer.js';

export interface CheckProblem {
  layer: string;
  block?: number;
  code: 'checksum-mismatch' | 'corrupt';
  message: string;
}

export interface CheckReport {
  ok: boolean;
  layers: number;
  blocksChecked: number;
  bytesChecked: number;
  problems: CheckProblem[];
}

const BATCH_BYTES = 8 << 20;

/**
 * Read every data block of every layer and compare it with the XXH3-128 recorded in the map.
 * (Map records, the manifest and the layer tree were already verified when the volume opened.)
 * Consecutive slots are read in one call and hashed in one kernel call per batch.
 */
export async function checkVolume(
  manifest: Manifest,
  layers: Map<string, Layer>,
  blockSize: number,
  onProgress?: (done: number, total: number) => void,
  signal?: AbortSignal,
): Promise<CheckReport> {
  const problems: CheckProblem[] = [];
  let total = 0;
  for (const r of manifest.layers) total += layers.get(r.id)!.dataBlocks;
  let done = 0;
  let largest = 0;
  for (const r of manifest.layers) largest = Math.max(largest, layers.get(r.id)!.dataBlocks);
  const perBatch = Math.max(1, Math.min(largest, Math.floor(BATCH_BYTES / blockSize)));
  const buf = new Uint8Array(perBatch * blockSize);
  for (const r of manifest.layers) {
    const layer = layers.get(r.id)!;
    const bySlot: [slot: number, block: number][] = [];
    for (const [block, slot] of layer.entries()) if (slot >= 0) bySlot.push([slot, block]);
    bySlot.sort((a, b) => a[0] - b[0]);
    if (r.sealed && r.contentId !== null && r.contentId !== layer.contentId()) {
      problems.push({ layer: r.id, code: 'corrupt', message: `content ID ${layer.contentId()} differs from the recorded ${r.contentId}` });
    }
    for (let i = 0; i < bySlot.length; i += perBatch) {
      if (signal?.aborted) throw new StrataError('aborted', 'The check was cancelled; run it again to check everything.');
      const batch = bySlot.slice(i, i + perBatch);
      const reads: Promise<void>[] = [];
      for (let k = 0; k < batch.length; ) {
        let e = k + 1;
        while (e < batch.length && batch[e]![0] === batch[k]![0] + (e - k)) e++;
        reads.push(layer.data.readInto(batch[k]![0] * blockSize, buf.subarray(k * blockSize, e * blockSize)));
        k = e;
      }
      try {
        await Promise.all(reads);
      } catch (e) {
        problems.push({ layer: r.id, code: 'corrupt', message: `data unreadable: ${(e as Error).message}` });
        continue;
      }
      for (const k of mismatchedBlocks(buf, blockSize, batch.length, (k) => layer.hash(batch[k]![1])!)) {
        problems.push({ layer: r.id, block: batch[k]![1], code: 'checksum-mismatch', message: `block ${batch[k]![1]} (slot ${batch[k]![0]}) does not match its checksum` });
      }
      done += batch.length;
      onProgress?.(done, total);
    }
  }
  return { ok: problems.length === 0, layers: manifest.layers.length, blocksChecked: done, bytesChecked: done * blockSize, problems };
}

/**
 * Which of the first `count` blocks in `buf` do not hash to their expected XXH3-128 (`want(k)`
 * for block k)? All are hashed in one kernel call. Shared by `check` and `salvage`.
 */
export function mismatchedBlocks(buf: Uint8Array, blockSize: number, count: number, want: (k: number) => Uint8Array): number[] {
  const bad: number[] = [];
  if (count === 0) return bad;
  const scan = scanBlocks(buf.subarray(0, count * blockSize), blockSize);
  for (let k = 0; k < count; k++) {
    const w = want(k);
    for (let j = 0; j < 16; j++) {
      if (w[j] !== scan.hashes[k * 16 + j]) {
        bad.push(k);
        break;
      }
    }
  }
  return bad;
}
