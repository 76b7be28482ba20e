/**
 * A qcow2 reader (versions 2 and 3) over a Store holding the image file. Every size and offset
 * read from the file is checked against the file's size and against caps before it is used, so a
 * hostile image gets a `corrupt` or `unsupported` error, never a huge allocation or a long loop.
 *
 * What it reads: the header and its extensions (backing file name and format, feature names),
 * the active L1 table and the L2 tables it points at, the internal snapshot table (each snapshot's
 * L1 table), standard, zero and compressed (deflate) clusters. What it refuses: encryption,
 * external data files, extended L2 entries, zstd compression, unknown incompatible features.
 * Refcounts are not needed for reading; only the refcount table's placement is checked.
 */
import { constants as zlibConstants, inflateRawSync } from 'node:zlib';
import { StrataError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import {
  COMPRESSION_ZLIB,
  COMPRESSION_ZSTD,
  CRYPT_NONE,
  EXT_BACKING_FORMAT,
  EXT_ENCRYPTION,
  EXT_END,
  EXT_EXTERNAL_DATA,
  EXT_FEATURE_NAMES,
  HEADER_V2_LENGTH,
  HEADER_V3_LENGTH,
  INCOMPAT_COMPRESSION_TYPE,
  INCOMPAT_CORRUPT,
  INCOMPAT_DIRTY,
  INCOMPAT_EXTENDED_L2,
  INCOMPAT_EXTERNAL_DATA,
  MAX_CLUSTER_BITS,
  MIN_CLUSTER_BITS,
  QCOW2_MAGIC,
  decodeHeader,
  type Qcow2Header,
} from './format.js';

/** qemu's own limits (block/qcow2.h), which no image qemu can open exceeds. */
export const MAX_L1_BYTES = 32 << 20;
export const MAX_REFCOUNT_TABLE_BYTES = 8 << 20;
export const MAX_SNAPSHOTS = 65536;
export const MAX_SNAPSHOT_TABLE_BYTES = 64 << 20;
export const MAX_SNAPSHOT_EXTRA = 1024;
export const MAX_BACKING_NAME = 1023;
/** Largest virtual size we accept: 2^53 - 1 rounded down to 512 (JS numbers stay exact). */
export const MAX_VIRTUAL_SIZE = 2 ** 53 - 512;

export type ClusterKind = 'data' | 'zero' | 'unallocated' | 'compressed';

/** A run of guest clusters of one kind (data runs are contiguous on the host too). */
export interface Qcow2Extent {
  /** first guest cluster index */
  cluster: number;
  /** number of guest clusters */
  count: number;
  kind: ClusterKind;
  /** data: host byte offset of the first cluster; compressed: offset of the deflate stream; else -1 */
  host: number;
  /** compressed only: bytes of the compressed stream (may run past the end of the file, as qemu allows) */
  compressedLength: number;
}

export interface Qcow2Snapshot {
  id: string;
  name: string;
  l1Offset: number;
  l1Size: number;
  /** virtual disk size of the snapshot (v3 extra data), else the image's size */
  size: number;
  vmStateSize: number;
}

/** An L1 table: L2 table offsets (0 = none), already checked. */
export interface L1Table {
  entries: Float64Array;
  /** guest size this table describes */
  size: number;
  label: string;
}

interface Region {
  start: number;
  end: number;
  what: string;
}

/** Compressed-run limit for one read: clusters of one extent are read in one go up to this. */
const MAX_RUN_BYTES = 8 << 20;

export class Qcow2Reader {
  readonly clusterSize: number;
  readonly clusterBits: number;
  readonly l2Entries: number;
  readonly size: number;
  readonly fileSize: number;
  readonly backingFile: string | null;
  readonly backingFormat: string | null;
  readonly snapshots: Qcow2Snapshot[];
  readonly featureNames: Map<string, string>;
  readonly active: L1Table;
  /** metadata areas, sorted and disjoint */
  private readonly regions: Region[];

  private constructor(
    readonly store: Store,
    readonly label: string,
    readonly header: Qcow2Header,
    init: {
      backingFile: string | null;
      backingFormat: string | null;
      snapshots: Qcow2Snapshot[];
      featureNames: Map<string, string>;
      active: L1Table;
      regions: Region[];
    },
  ) {
    this.clusterBits = header.clusterBits;
    this.clusterSize = 2 ** header.clusterBits;
    this.l2Entries = this.clusterSize / 8;
    // qemu counts a qcow2's virtual size in whole 512-byte sectors, rounding down; so do we,
    // or an odd-sized image would import one partial sector qemu never shows.
    this.size = Math.floor(header.size / 512) * 512;
    this.fileSize = store.size;
    this.backingFile = init.backingFile;
    this.backingFormat = init.backingFormat;
    this.snapshots = init.snapshots;
    this.featureNames = init.featureNames;
    this.active = init.active;
    this.regions = init.regions;
  }

  /**
   * Reads and checks the header, extensions, the active L1 table and the snapshot table (not the
   * L2 tables: {@link validate} walks those). `label` names the image in error messages.
   */
  static async open(store: Store, label: string): Promise<Qcow2Reader> {
    const fileSize = store.size;
    const bad = (why: string): never => {
      throw new StrataError('corrupt', `${label} is not a valid qcow2 image: ${why}.`);
    };
    if (fileSize < HEADER_V2_LENGTH) bad(`the file is only ${fileSize} bytes, shorter than a qcow2 header`);
    const head = await store.read(0, Math.min(fileSize, HEADER_V3_LENGTH + 8));
    const hv = new DataView(head.buffer, head.byteOffset, head.length);
    if (hv.getUint32(0) !== QCOW2_MAGIC) throw new StrataError('invalid-argument', `${label} is not a qcow2 image (no QFI\\xfb magic).`);
    const version = hv.getUint32(4);
    if (version !== 2 && version !== 3) throw new StrataError('unsupported', `${label} is qcow2 version ${version}; only versions 2 and 3 are supported.`);
    if (version === 3 && head.length < HEADER_V3_LENGTH) bad('the version 3 header is cut short');
    // Fields are checked raw (decodeHeader masks some of them), so read them here first.
    const cb = hv.getUint32(20);
    if (cb < MIN_CLUSTER_BITS || cb > MAX_CLUSTER_BITS) {
      throw new StrataError(cb < MIN_CLUSTER_BITS || cb > 30 ? 'corrupt' : 'unsupported', `${label}: cluster_bits ${cb} is outside ${MIN_CLUSTER_BITS}..${MAX_CLUSTER_BITS} (cluster sizes 512 bytes to 2 MiB).`);
    }
    const cs = 2 ** cb;
    for (const [at, name] of [[8, 'backing_file_offset'], [24, 'size'], [40, 'l1_table_offset'], [48, 'refcount_table_offset'], [64, 'snapshots_offset']] as const) {
      if (hv.getBigUint64(at) > BigInt(MAX_VIRTUAL_SIZE)) bad(`${name} (${hv.getBigUint64(at)}) is absurdly large`);
    }
    const h = decodeHeader(head)!;
    if (h.cryptMethod !== CRYPT_NONE) throw new StrataError('unsupported', `${label} is encrypted (crypt_method ${h.cryptMethod}${h.cryptMethod === 1 ? ', AES' : h.cryptMethod === 2 ? ', LUKS' : ''}); decrypt it first (qemu-img convert with --object secret,... to a plain qcow2).`);
    let headerLength = HEADER_V2_LENGTH;
    if (version === 3) {
      headerLength = h.headerLength;
      if (headerLength < HEADER_V3_LENGTH || headerLength % 8 !== 0 || headerLength > cs) bad(`header_length ${headerLength} is not a multiple of 8 between ${HEADER_V3_LENGTH} and the cluster size`);
      if (h.refcountOrder > 6) bad(`refcount_order ${h.refcountOrder} is above 6`);
    }
    // Feature names come from an extension, read below; the feature checks use them for messages.
    const ext = await readExtensions(store, label, headerLength, cs, fileSize);
    const known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_EXTERNAL_DATA | INCOMPAT_COMPRESSION_TYPE | INCOMPAT_EXTENDED_L2;
    const inc = h.incompatibleFeatures;
    if (inc & INCOMPAT_EXTERNAL_DATA || ext.externalData) throw new StrataError('unsupported', `${label} keeps its data in an external data file${ext.externalData ? ` (${ext.externalData})` : ''}; convert it to a self-contained qcow2 first (qemu-img convert -O qcow2).`);
    if (inc & INCOMPAT_EXTENDED_L2) throw new StrataError('unsupported', `${label} uses extended L2 entries (subclusters); convert it without extended_l2 first (qemu-img convert -O qcow2).`);
    if (ext.encryption) throw new StrataError('unsupported', `${label} has a full-disk encryption header; decrypt it first.`);
    if (inc & ~known) {
      const bits: string[] = [];
      for (let b = 0n; b < 64n; b++) if ((inc >> b) & 1n && !((known >> b) & 1n)) bits.push(ext.featureNames.get(`incompatible:${b}`) ?? `bit ${b}`);
      throw new StrataError('unsupported', `${label} uses incompatible features this reader does not know: ${bits.join(', ')}.`);
    }
    if (inc & INCOMPAT_COMPRESSION_TYPE) {
      if (headerLength <= 104) bad('the compression type bit is set but the header has no compression_type field');
      if (h.compressionType === COMPRESSION_ZLIB) bad('the compression type bit is set with compression_type 0');
      if (h.compressionType === COMPRESSION_ZSTD) throw new StrataError('unsupported', `${label} uses zstd compression; convert it with compression_type=zlib (or uncompressed) first.`);
      throw new StrataError('unsupported', `${label} uses unknown compression_type ${h.compressionType}.`);
    } else if (h.compressionType !== COMPRESSION_ZLIB) bad(`compression_type is ${h.compressionType} without the compression type feature bit`);

    const size = h.size;
    if (size > MAX_VIRTUAL_SIZE) bad(`virtual size ${size} is too large`);
    const regions: Region[] = [];
    const addRegion = (start: number, len: number, what: string) => {
      if (len === 0) return;
      if (start % cs !== 0) bad(`${what} at ${start} is not aligned to the cluster size (${cs})`);
      if (start < cs) bad(`${what} at ${start} overlaps the header cluster`);
      if (start + len > fileSize) bad(`${what} (${len} bytes at ${start}) runs past the end of the file (${fileSize} bytes)`);
      const end = start + len;
      const i = lowerBound(regions, start);
      const prev = regions[i - 1];
      const next = regions[i];
      if ((prev && prev.end > start) || (next && next.start < end)) bad(`${what} (${len} bytes at ${start}) overlaps ${(prev && prev.end > start ? prev : next)!.what}`);
      regions.splice(i, 0, { start, end, what });
    };

    // Active L1: big enough for the virtual size, not absurdly bigger, inside the file.
    const perL1 = cs * (cs / 8);
    const needed = Math.ceil(size / perL1);
    checkL1Size(h.l1Size, needed, label, 'the active L1 table', bad);
    addRegion(h.l1TableOffset, h.l1Size * 8, 'the active L1 table');
    // Refcount table: placement only (refcounts are not needed to read).
    const rtBytes = h.refcountTableClusters * cs;
    if (h.refcountTableClusters === 0) bad('refcount_table_clusters is 0');
    if (rtBytes > MAX_REFCOUNT_TABLE_BYTES) bad(`the refcount table (${h.refcountTableClusters} clusters) is larger than ${MAX_REFCOUNT_TABLE_BYTES} bytes`);
    addRegion(h.refcountTableOffset, rtBytes, 'the refcount table');

    // Backing file name.
    let backingFile: string | null = null;
    if (h.backingFileOffset !== 0) {
      if (h.backingFileSize === 0 || h.backingFileSize > MAX_BACKING_NAME) bad(`backing file name length ${h.backingFileSize} is not 1..${MAX_BACKING_NAME}`);
      if (h.backingFileOffset > cs) bad('the backing file name is not in the first cluster');
      if (h.backingFileOffset < headerLength) bad('the backing file name overlaps the header');
      if (h.backingFileOffset + h.backingFileSize > fileSize) bad('the backing file name runs past the end of the file');
      const raw = await store.read(h.backingFileOffset, h.backingFileSize);
      backingFile = decodeText(raw, label, 'backing file name', bad);
      if (backingFile.includes('\0')) bad('the backing file name contains a NUL byte');
    }

    // Snapshot table.
    const snapshots: Qcow2Snapshot[] = [];
    if (h.nbSnapshots > 0) {
      if (h.nbSnapshots > MAX_SNAPSHOTS) bad(`nb_snapshots ${h.nbSnapshots} is above ${MAX_SNAPSHOTS}`);
      if (h.snapshotsOffset % cs !== 0 || h.snapshotsOffset < cs || h.snapshotsOffset >= fileSize) bad(`snapshots_offset ${h.snapshotsOffset} is not a cluster inside the file`);
      // Read the table in growing windows, so a small table in a large file costs little.
      const tableMax = Math.min(MAX_SNAPSHOT_TABLE_BYTES, fileSize - h.snapshotsOffset);
      let table = await store.read(h.snapshotsOffset, Math.min(tableMax, 64 << 10));
      let tv = new DataView(table.buffer, table.byteOffset, table.length);
      const need = async (end: number) => {
        if (end <= table.length || table.length >= tableMax) return;
        table = await store.read(h.snapshotsOffset, Math.min(tableMax, Math.max(end, table.length * 2)));
        tv = new DataView(table.buffer, table.byteOffset, table.length);
      };
      let at = 0;
      const seenNames = new Set<string>();
      for (let i = 0; i < h.nbSnapshots; i++) {
        await need(at + 40);
        if (at + 40 > table.length) bad(`the snapshot table is cut short at entry ${i}`);
        const l1Offset = tv.getBigUint64(at);
        const l1Size = tv.getUint32(at + 8);
        const idLen = tv.getUint16(at + 12);
        const nameLen = tv.getUint16(at + 14);
        const vm32 = tv.getUint32(at + 32);
        const extra = tv.getUint32(at + 36);
        if (extra > MAX_SNAPSHOT_EXTRA) bad(`snapshot ${i} has ${extra} bytes of extra data (at most ${MAX_SNAPSHOT_EXTRA})`);
        if (version === 3 && extra < 16) bad(`snapshot ${i} lacks the virtual size that version 3 requires`);
        const entryLen = 40 + extra + idLen + nameLen;
        await need(at + entryLen);
        if (at + entryLen > table.length) bad(`snapshot ${i} runs past the end of the snapshot table`);
        let snapSize = size;
        let vmState = vm32;
        if (extra >= 8) {
          const vm = tv.getBigUint64(at + 40);
          vmState = vm > BigInt(MAX_VIRTUAL_SIZE) ? MAX_VIRTUAL_SIZE : Number(vm);
        }
        if (extra >= 16) {
          const s = tv.getBigUint64(at + 48);
          if (s > BigInt(MAX_VIRTUAL_SIZE)) bad(`snapshot ${i} has an absurd virtual size`);
          snapSize = Number(s);
        }
        const id = decodeText(table.subarray(at + 40 + extra, at + 40 + extra + idLen), label, `snapshot ${i} id`, bad);
        const name = decodeText(table.subarray(at + 40 + extra + idLen, at + entryLen), label, `snapshot ${i} name`, bad);
        if (seenNames.has(name)) bad(`two snapshots are named "${name}"`);
        seenNames.add(name);
        if (l1Offset > BigInt(MAX_VIRTUAL_SIZE)) bad(`snapshot "${name}" has an absurd L1 table offset`);
        const snapNeeded = Math.ceil(snapSize / perL1);
        checkL1Size(l1Size, snapNeeded, label, `the L1 table of snapshot "${name}"`, bad, true);
        addRegion(Number(l1Offset), l1Size * 8, `the L1 table of snapshot "${name}"`);
        snapshots.push({ id, name, l1Offset: Number(l1Offset), l1Size, size: snapSize, vmStateSize: vmState });
        at += (entryLen + 7) & ~7;
      }
      addRegion(h.snapshotsOffset, Math.min(roundUp(at, 1), fileSize - h.snapshotsOffset), 'the snapshot table');
    }

    const reader = new Qcow2Reader(store, label, h, {
      backingFile,
      backingFormat: ext.backingFormat,
      snapshots,
      featureNames: ext.featureNames,
      active: { entries: new Float64Array(0), size, label: 'the active L1 table' },
      regions,
    });
    (reader as { active: L1Table }).active = await reader.loadL1(h.l1TableOffset, h.l1Size, size, 'the active L1 table');
    return reader;
  }

  /** The L1 table of internal snapshot `s`, checked. */
  snapshotL1(s: Qcow2Snapshot): Promise<L1Table> {
    return this.loadL1(s.l1Offset, s.l1Size, s.size, `the L1 table of snapshot "${s.name}"`);
  }

  private bad(why: string): never {
    throw new StrataError('corrupt', `${this.label} is not a valid qcow2 image: ${why}.`);
  }

  private async loadL1(offset: number, l1Size: number, size: number, what: string): Promise<L1Table> {
    const cs = this.clusterSize;
    const needed = Math.min(l1Size, Math.ceil(size / (cs * this.l2Entries)));
    const entries = new Float64Array(needed);
    if (needed === 0) return { entries, size, label: what };
    const raw = await this.store.read(offset, needed * 8);
    const v = new DataView(raw.buffer, raw.byteOffset, raw.length);
    for (let i = 0; i < needed; i++) {
      const hi = v.getUint32(i * 8);
      const lo = v.getUint32(i * 8 + 4);
      // bits 0..8 and 56..62 are reserved; bit 63 (copied) is ignored.
      if (lo & 0x1ff || hi & 0x7f000000) this.bad(`${what} entry ${i} has reserved bits set`);
      const l2 = (hi & 0x00ffffff) * 2 ** 32 + lo;
      if (l2 === 0) continue;
      this.checkHostCluster(l2, `${what} entry ${i} (an L2 table)`, true);
      entries[i] = l2;
    }
    return { entries, size, label: what };
  }

  /** A host cluster must be aligned, past the header, inside the file; metadata must not overlap tables. */
  private checkHostCluster(host: number, what: string, metadata: boolean): void {
    const cs = this.clusterSize;
    if (host % cs !== 0) this.bad(`${what} at ${host} is not aligned to the cluster size`);
    if (host < cs) this.bad(`${what} at ${host} points into the header`);
    if (host + cs > this.fileSize) this.bad(`${what} at ${host} is past the end of the file (${this.fileSize} bytes)`);
    if (metadata) {
      const r = this.regionAt(host, host + cs);
      if (r) this.bad(`${what} at ${host} overlaps ${r.what}`);
    }
  }

  private regionAt(start: number, end: number): Region | undefined {
    const i = lowerBound(this.regions, start);
    const prev = this.regions[i - 1];
    if (prev && prev.end > start) return prev;
    const next = this.regions[i];
    if (next && next.start < end) return next;
    return undefined;
  }

  private async readL2(offset: number): Promise<DataView> {
    const raw = await this.store.read(offset, this.clusterSize);
    return new DataView(raw.buffer, raw.byteOffset, raw.length);
  }

  /**
   * Walks every L2 table of `l1` and checks every entry (reserved bits, alignment, bounds,
   * compressed descriptors). Reads each L2 table once; keeps none. Throws `corrupt`.
   */
  async validate(l1: L1Table = this.active, signal?: AbortSignal): Promise<void> {
    for await (const _ of this.extents(l1, undefined, signal)) {
      // extents() checks each entry as it decodes it
    }
  }

  /**
   * Runs of guest clusters of `l1` by kind, in guest order, clipped to `l1.size`. Data runs are
   * contiguous on the host (one read each, up to 8 MiB); compressed clusters come one per extent.
   * With `against`, only clusters whose L2 entry differs from `against`'s are yielded (bit 63,
   * "copied", is ignored); runs that are the same are skipped.
   */
  async *extents(l1: L1Table, against?: L1Table, signal?: AbortSignal): AsyncGenerator<Qcow2Extent> {
    const cs = this.clusterSize;
    const n2 = this.l2Entries;
    const clusters = Math.ceil(l1.size / cs);
    const v3 = this.header.version === 3;
    const xBits = 70 - this.clusterBits; // compressed offset field width (62 - (cluster_bits - 8))
    const offHiMask = 2 ** (xBits - 32) - 1;
    const sectorsMask = 2 ** (62 - xBits) - 1;
    const maxRun = Math.max(1, Math.floor(MAX_RUN_BYTES / cs));
    let cur: Qcow2Extent | null = null;
    const out: Qcow2Extent[] = [];
    const emit = (cluster: number, kind: ClusterKind, host: number, clen: number) => {
      if (
        cur &&
        cur.kind === kind &&
        cur.cluster + cur.count === cluster &&
        kind !== 'compressed' &&
        (kind !== 'data' || (cur.host + cur.count * cs === host && cur.count < maxRun))
      ) {
        cur.count++;
        return;
      }
      if (cur) out.push(cur);
      cur = { cluster, count: 1, kind, host, compressedLength: clen };
    };
    for (let i = 0; i < l1.entries.length; i++) {
      if (signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
      const first = i * n2;
      if (first >= clusters) break;
      const last = Math.min(clusters, first + n2);
      const l2Off = l1.entries[i]!;
      const otherOff = against ? (i < against.entries.length ? against.entries[i]! : 0) : -1;
      if (against && l2Off === otherOff && last * cs <= against.size) continue; // the same L2 table: nothing differs
      const l2 = l2Off === 0 ? null : await this.readL2(l2Off);
      const other = against && otherOff > 0 ? await this.readL2(otherOff) : null;
      for (let c = first; c < last; c++) {
        const k = (c - first) * 8;
        const hi = l2 ? l2.getUint32(k) : 0;
        const lo = l2 ? l2.getUint32(k + 4) : 0;
        if (against) {
          const ohi = other ? other.getUint32(k) : 0;
          const olo = other ? other.getUint32(k + 4) : 0;
          // A cluster not wholly inside the other view's size was (partly) zeros there: treat it
          // as different. (Long fuzz run, case 32738: a snapshot 1 byte long.)
          const outside = (c + 1) * cs > against.size;
          if (!outside && (ohi & 0x7fffffff) === (hi & 0x7fffffff) && olo === lo) continue;
        }
        if (hi & 0x40000000) {
          // compressed
          const host = (hi & offHiMask) * 2 ** 32 + lo;
          const sectors = ((hi >>> (xBits - 32)) & sectorsMask) + 1;
          const clen = sectors * 512 - (host % 512);
          if (host < cs || host >= this.fileSize) this.bad(`the compressed cluster of guest cluster ${c} is at ${host}, outside the file's data area`);
          emit(c, 'compressed', host, clen);
          continue;
        }
        if (lo & 0x1fe || hi & 0x3f000000) this.bad(`the L2 entry of guest cluster ${c} has reserved bits set`);
        const host = (hi & 0x00ffffff) * 2 ** 32 + ((lo & 0xfffffe00) >>> 0);
        if (lo & 1) {
          if (!v3) this.bad(`the L2 entry of guest cluster ${c} has the zero flag, which version 2 does not have`);
          if (host !== 0) this.checkHostCluster(host, `the preallocated zero cluster of guest cluster ${c}`, false);
          emit(c, 'zero', -1, 0);
          continue;
        }
        if (host === 0) {
          if (hi & 0x80000000) this.bad(`guest cluster ${c} maps to host offset 0 (the header)`);
          emit(c, 'unallocated', -1, 0);
          continue;
        }
        this.checkHostCluster(host, `the data cluster of guest cluster ${c}`, false);
        emit(c, 'data', host, 0);
      }
      if (out.length > 0) {
        yield* out;
        out.length = 0;
      }
    }
    if (cur) yield cur;
  }

  /**
   * Reads the guest clusters of a data or compressed extent into `target` (which must hold
   * `extent.count * clusterSize` bytes, or fewer: the tail is not read). Compressed clusters are
   * inflated with the output bounded by the cluster size; anything else is `corrupt`.
   */
  async readClusters(extent: Qcow2Extent, target: Uint8Array): Promise<void> {
    const cs = this.clusterSize;
    if (extent.kind === 'data') {
      await this.store.readInto(extent.host, target.subarray(0, Math.min(target.length, extent.count * cs)));
      return;
    }
    if (extent.kind === 'compressed') {
      const len = Math.min(extent.compressedLength, this.fileSize - extent.host);
      const input = await this.store.read(extent.host, len);
      let out: Buffer;
      try {
        // Sync flush: like qemu, a stream that has produced a whole cluster need not be finished.
        out = inflateRawSync(input, { maxOutputLength: cs, finishFlush: zlibConstants.Z_SYNC_FLUSH });
      } catch (e) {
        this.bad(`the compressed cluster of guest cluster ${extent.cluster} does not inflate to one cluster (${(e as Error).message})`);
      }
      if (out.length !== cs) this.bad(`the compressed cluster of guest cluster ${extent.cluster} inflates to ${out.length} bytes, not ${cs}`);
      target.set(out.subarray(0, Math.min(cs, target.length)));
      return;
    }
    target.fill(0);
  }
}

/** Header extensions: bounded by the first cluster, each length checked before use. */
async function readExtensions(store: Store, label: string, headerLength: number, cs: number, fileSize: number) {
  const bad = (why: string): never => {
    throw new StrataError('corrupt', `${label} is not a valid qcow2 image: ${why}.`);
  };
  const result = { backingFormat: null as string | null, featureNames: new Map<string, string>(), externalData: null as string | null, encryption: false };
  const areaEnd = Math.min(cs, fileSize);
  if (headerLength + 8 > areaEnd) return result;
  const area = await store.read(headerLength, areaEnd - headerLength);
  const v = new DataView(area.buffer, area.byteOffset, area.length);
  let at = 0;
  const seen = new Set<number>();
  for (let n = 0; at + 8 <= area.length; n++) {
    const type = v.getUint32(at);
    const len = v.getUint32(at + 4);
    if (type === EXT_END) break;
    if (len > area.length - at - 8) bad(`header extension 0x${type.toString(16)} claims ${len} bytes, past the end of the first cluster`);
    const data = area.subarray(at + 8, at + 8 + len);
    if (type !== 0 && seen.has(type) && (type === EXT_BACKING_FORMAT || type === EXT_FEATURE_NAMES || type === EXT_EXTERNAL_DATA || type === EXT_ENCRYPTION)) bad(`header extension 0x${type.toString(16)} appears twice`);
    seen.add(type);
    if (type === EXT_BACKING_FORMAT) result.backingFormat = decodeText(data, label, 'backing format', bad);
    else if (type === EXT_EXTERNAL_DATA) result.externalData = decodeText(data, label, 'external data file name', bad) || 'unnamed';
    else if (type === EXT_ENCRYPTION) result.encryption = true;
    else if (type === EXT_FEATURE_NAMES) {
      for (let k = 0; k + 48 <= data.length; k += 48) {
        const kind = ['incompatible', 'compatible', 'autoclear'][data[k]!] ?? 'unknown';
        let end = k + 2;
        while (end < k + 48 && data[end] !== 0) end++;
        result.featureNames.set(`${kind}:${data[k + 1]}`, new TextDecoder().decode(data.subarray(k + 2, end)));
      }
    }
    at += 8 + roundUp(len, 8);
  }
  return result;
}

function checkL1Size(l1Size: number, needed: number, label: string, what: string, bad: (w: string) => never, snapshot = false): void {
  if (l1Size < needed) bad(`${what} has ${l1Size} entries, fewer than the ${needed} the virtual size needs`);
  // qemu grows L1 tables by half again on resize; a snapshot's table also covers its VM state.
  const cap = snapshot ? MAX_L1_BYTES / 8 : Math.max(needed * 2, needed + 1024);
  if (l1Size > cap || l1Size * 8 > MAX_L1_BYTES) bad(`${what} has ${l1Size} entries, absurdly more than the ${needed} the virtual size needs`);
  void label;
}

function decodeText(raw: Uint8Array, label: string, what: string, bad: (w: string) => never): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return bad(`the ${what} is not valid UTF-8`);
  }
}

function roundUp(x: number, to: number): number {
  return Math.ceil(x / to) * to;
}

/** Index of the first region starting at or after `start`. */
function lowerBound(regions: Region[], start: number): number {
  let lo = 0;
  let hi = regions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (regions[mid]!.start < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** True when the first bytes are the qcow2 magic. */
export function isQcow2Magic(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x51 && bytes[1] === 0x46 && bytes[2] === 0x49 && bytes[3] === 0xfb;
}
