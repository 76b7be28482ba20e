/**
 * qcow2 on-disk layout (docs/interop/qcow2.rst in qemu): constants and the fixed header, shared
 * by the reader (import) and the writer (export). All fields are big-endian.
 */
export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
export const HEADER_V2_LENGTH = 72;
export const HEADER_V3_LENGTH = 104;
export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;

/** L1 entry: bits 9..55 = L2 table offset; bit 63 = "copied" (refcount exactly one). */
export const L1_OFFSET_MASK = 0x00fffffffffffe00n;
/** Standard L2 entry: bits 9..55 = host cluster offset; bit 0 = reads as zeros (v3). */
export const L2_OFFSET_MASK = 0x00fffffffffffe00n;
export const L2_ZERO_FLAG = 1n;
export const ENTRY_COPIED = 1n << 63n;
export const ENTRY_COMPRESSED = 1n << 62n;

/** Incompatible feature bits. */
export const INCOMPAT_DIRTY = 1n << 0n;
export const INCOMPAT_CORRUPT = 1n << 1n;
export const INCOMPAT_EXTERNAL_DATA = 1n << 2n;
export const INCOMPAT_COMPRESSION_TYPE = 1n << 3n;
export const INCOMPAT_EXTENDED_L2 = 1n << 4n;

/** Header extension types. */
export const EXT_END = 0x00000000;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_NAMES = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_ENCRYPTION = 0x0537be77;
export const EXT_EXTERNAL_DATA = 0x44415441;

export const CRYPT_NONE = 0;
export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

export interface Qcow2Header {
  version: 2 | 3;
  backingFileOffset: number;
  backingFileSize: number;
  clusterBits: number;
  size: number;
  cryptMethod: number;
  l1Size: number;
  l1TableOffset: number;
  refcountTableOffset: number;
  refcountTableClusters: number;
  nbSnapshots: number;
  snapshotsOffset: number;
  incompatibleFeatures: bigint;
  compatibleFeatures: bigint;
  autoclearFeatures: bigint;
  /** refcount width is 2^refcountOrder bits (v2: always 4, i.e. 16-bit) */
  refcountOrder: number;
  headerLength: number;
  compressionType: number;
}

/** Byte offset -> JS number; throws RangeError beyond 2^53 (callers bound offsets by file size anyway). */
export function u64(v: DataView, at: number): number {
  const x = v.getBigUint64(at, false);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`64-bit field at ${at} is too large`);
  return Number(x);
}

/** Decode the fixed header fields (no validation beyond reading; the reader validates). */
export function decodeHeader(bytes: Uint8Array): Qcow2Header | null {
  if (bytes.length < HEADER_V2_LENGTH) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (v.getUint32(0, false) !== QCOW2_MAGIC) return null;
  const version = v.getUint32(4, false);
  if (version !== 2 && version !== 3) return { version: version as 2 | 3 } as Qcow2Header;
  const v3 = version === 3 && bytes.length >= HEADER_V3_LENGTH;
  const h: Qcow2Header = {
    version,
    backingFileOffset: Number(v.getBigUint64(8, false) & 0xfffffffffffffn),
    backingFileSize: v.getUint32(16, false),
    clusterBits: v.getUint32(20, false),
    size: Number(v.getBigUint64(24, false) & 0x1fffffffffffffn),
    cryptMethod: v.getUint32(32, false),
    l1Size: v.getUint32(36, false),
    l1TableOffset: Number(v.getBigUint64(40, false) & 0x1fffffffffffffn),
    refcountTableOffset: Number(v.getBigUint64(48, false) & 0x1fffffffffffffn),
    refcountTableClusters: v.getUint32(56, false),
    nbSnapshots: v.getUint32(60, false),
    snapshotsOffset: Number(v.getBigUint64(64, false) & 0x1fffffffffffffn),
    incompatibleFeatures: v3 ? v.getBigUint64(72, false) : 0n,
    compatibleFeatures: v3 ? v.getBigUint64(80, false) : 0n,
    autoclearFeatures: v3 ? v.getBigUint64(88, false) : 0n,
    refcountOrder: v3 ? v.getUint32(96, false) : 4,
    headerLength: v3 ? v.getUint32(100, false) : HEADER_V2_LENGTH,
    compressionType: v3 && bytes.length > 104 && v.getUint32(100, false) > 104 ? bytes[104]! : COMPRESSION_ZLIB,
  };
  return h;
}

/** Encode a v3 header (104 bytes, zlib compression, no extensions area) into `out`. */
export function encodeHeaderV3(h: Omit<Qcow2Header, 'version' | 'headerLength' | 'compressionType'>, out: Uint8Array): void {
  const v = new DataView(out.buffer, out.byteOffset, HEADER_V3_LENGTH);
  v.setUint32(0, QCOW2_MAGIC, false);
  v.setUint32(4, 3, false);
  v.setBigUint64(8, BigInt(h.backingFileOffset), false);
  v.setUint32(16, h.backingFileSize, false);
  v.setUint32(20, h.clusterBits, false);
  v.setBigUint64(24, BigInt(h.size), false);
  v.setUint32(32, h.cryptMethod, false);
  v.setUint32(36, h.l1Size, false);
  v.setBigUint64(40, BigInt(h.l1TableOffset), false);
  v.setBigUint64(48, BigInt(h.refcountTableOffset), false);
  v.setUint32(56, h.refcountTableClusters, false);
  v.setUint32(60, h.nbSnapshots, false);
  v.setBigUint64(64, BigInt(h.snapshotsOffset), false);
  v.setBigUint64(72, h.incompatibleFeatures, false);
  v.setBigUint64(80, h.compatibleFeatures, false);
  v.setBigUint64(88, h.autoclearFeatures, false);
  v.setUint32(96, h.refcountOrder, false);
  v.setUint32(100, HEADER_V3_LENGTH, false);
}

/** Bits of the offset field of a compressed L2 descriptor: x = 62 - (cluster_bits - 8). */
export function compressedOffsetBits(clusterBits: number): number {
  return 62 - (clusterBits - 8);
}
