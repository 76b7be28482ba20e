import { StrataError } from '../errors.js';
import { verifyBlocks, type SparseBitmap } from '../wasm/index.js';

/**
 * Verify-on-read: every block a layer stores has its XXH3-128 in the layer's map, and every read
 * path checks the bytes it returns against it, so damaged data is refused with
 * `checksum-mismatch`, never served.
 *
 * - `on` (the default): a read that covers whole blocks hashes them, every time (one kernel
 *   call per run of blocks, batched with the read). A read of part of a block reads and checks
 *   the whole block the first time in this open, then remembers it (`Layer.verified`, one bit per
 *   block, cleared when the block changes): later partial reads of it read only the bytes asked
 *   for. So a 4 KiB read of a 64 KiB block costs a 64 KiB read and hash once, not every time.
 * - `always`: partial reads read and check their whole block on every read as well.
 * - `off`: no checks. For benchmarks that measure the cost of the checks, nothing else.
 *
 * Why a per-open verified set rather than per-sector checksums: it needs no change to the
 * on-store format (every existing volume gets verification), keeps one hash per block in
 * memory, and costs a whole-block read only on the first partial read of a block. What it does
 * not catch: a block that was verified in this open and then damaged underneath the running
 * process (on the device or by another program writing the layer file) is served to later
 * partial reads until the volume is opened again, or always, in `always` mode; whole-block
 * reads still catch it. ZFS makes the same trade for its in-memory cache.
 *
 * What a whole-block read costs (measured on a 2-vCPU Xeon VM, see the README's benchmark rows):
 * the hash (the XXH3 kernel does ~16 GB/s per core with WASM SIMD128; native xxhsum with AVX2
 * ~37 GB/s) plus one copy of the bytes into WASM memory, unless the caller's buffer is itself a
 * view of WASM memory (a WasmBuffer), which is hashed in place. Served from the page cache, the
 * read alone is a kernel memcpy at 9-20 GB/s, so on one core verification costs about as much
 * as the read: ~0.55x of an unchecked read. Only hashing on another core while the read runs
 * hides it: runs that go to the thread pool anyway are read in pieces, all in flight, each
 * hashed as soon as it lands (RunReader). From a device, the read sets the pace and the hash
 * mostly hides behind it.
 */
export type VerifyMode = 'on' | 'always' | 'off';

export const VERIFY_MODES: readonly VerifyMode[] = ['on', 'always', 'off'];

/** What verification needs of a chain layer; a `Layer` has it, a remote image (no hashes) does not. */
export interface LayerChecksums {
  readonly id: string;
  readonly verified: SparseBitmap;
  /** Stored XXH3-128 of blocks [first, first+count) into out[at..] (16 bytes each). */
  hashRun(first: number, count: number, out: Uint8Array, at?: number): void;
}

/** The error for a block whose stored bytes do not match their checksum. */
export function checksumMismatch(volume: string, layer: string, block: number, blockSize: number): StrataError {
  const from = block * blockSize;
  return new StrataError(
    'checksum-mismatch',
    `${volume}: layer ${layer} holds damaged data for bytes ${from}-${from + blockSize - 1} (block ${block}): ` +
      `they do not match their checksum, so they were not returned. Run \`stratadisk check\` to list the damage and ` +
      `\`stratadisk salvage\` to export what is still readable.`,
  );
}

/** Scratch for expected hashes, reused; verification is synchronous, so one buffer serves every caller. */
let expected = new Uint8Array(16 * 64);

/**
 * Check blocks [first, first+count) of `layer`, whose stored bytes are `data` (whole blocks,
 * back to back), against their checksums; mark them verified. Throws `checksum-mismatch`.
 */
export function verifyRun(volume: string, layer: LayerChecksums, first: number, count: number, data: Uint8Array, blockSize: number): void {
  // A view whose buffer was detached while the read was in flight (a view of WebAssembly memory
  // that grew) has length 0: it would hash nothing and mark the blocks verified.
  if (data.length !== count * blockSize) {
    throw new StrataError('invalid-argument', `${volume}: the buffer for a read of ${count} blocks of layer ${layer.id} holds ${data.length} bytes, not ${count * blockSize} (a view of WebAssembly memory that grew during the read?); nothing was verified. Read into a buffer that stays valid.`);
  }
  if (expected.length < count * 16) expected = new Uint8Array(Math.max(count * 16, expected.length * 2));
  layer.hashRun(first, count, expected, 0);
  const bad = verifyBlocks(data, blockSize, expected);
  if (bad >= 0) {
    // Blocks before the bad one matched: keep that knowledge.
    if (bad > 0) layer.verified.set(first, bad);
    throw checksumMismatch(volume, layer.id, first + bad, blockSize);
  }
  layer.verified.set(first, count);
}

/**
 * Check gathered blocks of `layer` (merges and copies gather block data and stored hashes side
 * by side): for each run [k, e) of `runs` (flat pairs of indexes), data[k*bs, e*bs) holds blocks
 * `blocks[k..e)` and hashes[16k, 16e) their stored XXH3-128. One kernel call per run. Throws
 * `checksum-mismatch` naming the first bad block.
 */
export function verifyGathered(volume: string, layer: string, blocks: ArrayLike<number>, runs: ArrayLike<number>, data: Uint8Array, blockSize: number, hashes: Uint8Array): void {
  for (let r = 0; r < runs.length; r += 2) {
    const k = runs[r]!;
    const e = runs[r + 1]!;
    const bad = verifyBlocks(data.subarray(k * blockSize, e * blockSize), blockSize, hashes.subarray(k * 16, e * 16));
    if (bad >= 0) throw checksumMismatch(volume, layer, blocks[k + bad]!, blockSize);
  }
}
