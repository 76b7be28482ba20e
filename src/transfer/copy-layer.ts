import { StrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';
import { scanBlocks } from '../wasm/index.js';
import { Layer, SLOT_ZERO } from '../volume/layer.js';

/**
 * Reading a layer's blocks with their checksums checked, and copying a layer into another
 * namespace: the pieces of `copy` (src/transfer/copy.ts) that touch blocks.
 */

/** Bytes read per batch: bounds memory, keeps reads of consecutive slots coalesced. */
const BATCH_BYTES = 8 << 20;

export interface VerifiedBatch {
  /** blocks of this batch, each with 16 bytes of XXH3-128 at hashes[16*k] and its bytes at data[k*bs] */
  blocks: number[];
  data: Uint8Array;
  hashes: Uint8Array;
}

/**
 * Read every data block of `layer` in slot order, batch by batch, and hand each batch to `fn`
 * once every block in it matched the XXH3-128 its map records; a block that does not fails with
 * `checksum-mismatch` naming `label` and the block. `onBytes` counts the bytes read.
 */
export async function readVerified(layer: Layer, label: string, fn: (b: VerifiedBatch) => Promise<void>, signal?: AbortSignal): Promise<void> {
  const bs = layer.blockSize;
  const bySlot: [slot: number, block: number][] = [];
  for (const [block, slot] of layer.entries()) if (slot >= 0) bySlot.push([slot, block]);
  bySlot.sort((a, b) => a[0] - b[0]);
  const perBatch = Math.max(1, Math.min(bySlot.length, Math.floor(BATCH_BYTES / bs)));
  const buf = new Uint8Array(perBatch * bs);
  const scan = { hashes: new Uint8Array(perBatch * 16), zero: new Uint8Array(perBatch) };
  for (let i = 0; i < bySlot.length; i += perBatch) {
    if (signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
    const batch = bySlot.slice(i, i + perBatch);
    const reads: Promise<void>[] = [];
    for (let k = 0; k < batch.length; ) {
      let e = k + 1;
      while (e < batch.length && batch[e]![0] === batch[k]![0] + (e - k)) e++;
      reads.push(layer.data.readInto(batch[k]![0] * bs, buf.subarray(k * bs, e * bs)));
      k = e;
    }
    await Promise.all(reads);
    const data = buf.subarray(0, batch.length * bs);
    scanBlocks(data, bs, scan);
    for (let k = 0; k < batch.length; k++) {
      const want = layer.hash(batch[k]![1])!;
      for (let j = 0; j < 16; j++) {
        if (scan.hashes[k * 16 + j] !== want[j]) {
          throw new StrataError('checksum-mismatch', `${label}: block ${batch[k]![1]} (${(batch[k]![1] * bs).toString()} bytes in) does not match its checksum; the layer's data is damaged.`);
        }
      }
    }
    await fn({ blocks: batch.map((x) => x[1]), data, hashes: scan.hashes });
  }
}

/** Read all of `layer`'s data and check it; resolves to the problem found, or null. */
export async function damageIn(layer: Layer, label: string, signal?: AbortSignal, onBytes?: (n: number) => void): Promise<string | null> {
  try {
    await readVerified(layer, label, async (b) => onBytes?.(b.data.length), signal);
    return null;
  } catch (e) {
    if (e instanceof StrataError && (e.code === 'checksum-mismatch' || e.code === 'out-of-range')) return e.message;
    throw e;
  }
}

/**
 * Copy `src`'s entries into a new layer `id` of `ns` (whatever was there under that id is
 * replaced), reading with checksums checked, then flush it: data first, then its map. The copy's
 * content ID equals the source's (same entries), which is checked. `onBytes` counts data bytes.
 */
export async function copyLayer(src: Layer, srcLabel: string, ns: StoreNamespace, id: string, signal: AbortSignal | undefined, onBytes: (n: number) => void): Promise<Layer> {
  const bs = src.blockSize;
  const dst = await Layer.create(ns, id, bs);
  try {
    const zeros: number[] = [];
    for (const [block, slot] of src.entries()) if (slot === SLOT_ZERO) zeros.push(block);
    if (zeros.length > 0) dst.setEntries(zeros, new Array<number>(zeros.length).fill(SLOT_ZERO), zeros.length, null);
    await readVerified(
      src,
      srcLabel,
      async (b) => {
        // New slots, one store write per run of them, the source's checksums carried over.
        await dst.putBlocks({ blocks: b.blocks, index: b.blocks.map((_, k) => k), data: b.data, hashes: b.hashes });
        onBytes(b.data.length);
      },
      signal,
    );
    await dst.flush();
    if (dst.contentId() !== src.contentId()) {
      throw new StrataError('corrupt', `The copy of ${srcLabel} has content ID ${dst.contentId()}, not the source's ${src.contentId()}; the copy is discarded.`);
    }
    return dst;
  } catch (e) {
    await dst.close().catch(() => {});
    throw e;
  }
}
