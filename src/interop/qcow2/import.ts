/**
 * qcow2 import: a qcow2 image (and its backing chain, and its internal snapshots) into a volume,
 * keeping the chain's shape: each backing image becomes a sealed layer with a snapshot named
 * after its file, each internal snapshot of the top image a snapshot of its own, and the top
 * image's active state ends up in the volume's active (unsealed) layer.
 *
 * Into an existing volume, the image replaces the live view (changes made since its last snapshot
 * are dropped) and its snapshots are added; the volume's own snapshots stay as they are.
 *
 * Safety: every image of the chain is opened and every L1/L2 table of every view is checked
 * before anything is written. What can still fail later is cluster data (a compressed cluster
 * that does not inflate, an I/O error) or a cancel. The import is therefore one staged change of
 * the volume (Volume.staged): its layers and snapshots are published by one manifest commit at
 * the end. Until then nothing the volume had is touched, so a failed, cancelled or killed import
 * leaves an existing volume exactly as it was (same snapshots, same content, same live view);
 * a volume this import created is removed again (the directory is left as it was found; after
 * a crash it is left empty, and the next writable open deletes the import's partial layers).
 */
import { mkdirSync, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import { DIR_MODE } from '../../store/node-modes.js';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { StrataError } from '../../errors.js';
import { MANIFEST_SLOTS, SNAPSHOT_NAME } from '../../format/manifest.js';
import { NodeDirNamespace } from '../../store/node-dir.js';
import { NodeFileStore } from '../../store/node-file.js';
import type { Store } from '../../store/store.js';
import { Volume, type VolumeReader, type WriteRange } from '../../volume/volume.js';
import { alignedBytes } from '../../wasm/aligned.js';
import { scanBlocks } from '../../wasm/index.js';
import { detectStore } from '../detect.js';
import { Qcow2Reader, isQcow2Magic, type L1Table, type Qcow2Extent } from './reader.js';

/** Deepest backing chain followed (qemu itself stops far earlier in practice). */
export const MAX_CHAIN_DEPTH = 64;
/**
 * Bytes per Volume.writeRanges: large enough to amortise, bounded in memory (two buffers). The
 * batches reach the data file as single O_DIRECT writes, and the device takes a 32 MiB write
 * about twice as fast as four of 8 MiB (measured on this VM: 512 MiB in 0.4-0.7 s vs 0.9-1.2 s).
 */
const BATCH = 32 << 20;
/** Bytes handed to the volume between background writebacks (Volume.startWriteback). */
const WRITEBACK_EVERY = 64 << 20;

export interface ImportQcow2Progress {
  phase: 'validate' | 'copy';
  /** the image being read */
  image: string;
  /** bytes of cluster data copied so far, of `total` (both 0 during validation) */
  done: number;
  total: number;
}

export interface ImportQcow2Options {
  /** Backing files must resolve inside this directory (default: the image's own directory). */
  allowDir?: string;
  onProgress?: (p: ImportQcow2Progress) => void;
  signal?: AbortSignal;
  /** Block size of a volume the import creates (default: the cluster size, clamped to 4K..1M). */
  blockSize?: number;
  /**
   * Called just before the manifest commit that publishes the import: a failure after this may
   * or may not have published it (see Volume.staged); before it, the volume is unchanged.
   */
  onCommit?: () => void;
}

export interface ImportedImage {
  path: string;
  format: 'qcow2' | 'raw';
  size: number;
  /** the stratadisk snapshot sealing this image's layer (null for the top image: it stays active) */
  snapshot: string | null;
}

export interface ImportQcow2Result {
  size: number;
  clusterSize: number;
  blockSize: number;
  /** base first */
  chain: ImportedImage[];
  /** internal snapshots of the top image: qcow2 name -> stratadisk snapshot name */
  internalSnapshots: { qcow2: string; snapshot: string }[];
  /** bytes of cluster data copied (data and compressed clusters) */
  bytesCopied: number;
  createdVolume: boolean;
}

interface ChainImage {
  path: string;
  format: 'qcow2' | 'raw';
  store: NodeFileStore;
  reader: Qcow2Reader | null;
  size: number;
}

interface View {
  image: number;
  l1: L1Table | null;
  size: number;
  /** snapshot to take after this view, or null for the last (active) view */
  snapshot: string | null;
  qcow2Snapshot?: string;
}

/** True when `dir` holds a volume (a manifest slot), which an import then goes into. */
export function holdsVolume(dir: string): boolean {
  return MANIFEST_SLOTS.some((s) => exists(join(dir, s)));
}

/** True when the file at `path` starts with the qcow2 magic. */
export async function isQcow2File(path: string): Promise<boolean> {
  const store = await NodeFileStore.open(path, { readOnly: true });
  try {
    return store.size >= 4 && isQcow2Magic(await store.read(0, 4));
  } finally {
    await store.close();
  }
}

/**
 * Import `imagePath` (qcow2) into a volume: an open writable Volume (whose size must equal the
 * image's virtual size), or a directory (the volume in it is opened, or created with the image's
 * size when the directory holds none). See the module comment for what happens on failure.
 */
export async function importQcow2(target: Volume | string, imagePath: string, options: ImportQcow2Options = {}): Promise<ImportQcow2Result> {
  const signal = options.signal;
  const chain = await openChain(imagePath, options);
  try {
    const top = chain[0]!;
    const topReader = top.reader!;
    // Validate everything before touching the volume.
    const views: View[] = [];
    let total = 0;
    for (let k = chain.length - 1; k >= 0; k--) {
      const img = chain[k]!;
      options.onProgress?.({ phase: 'validate', image: img.path, done: 0, total: 0 });
      if (!img.reader) {
        total += Math.min(img.size, top.size);
        views.push({ image: k, l1: null, size: img.size, snapshot: '' });
        continue;
      }
      if (k === 0) {
        let prev: L1Table | undefined;
        for (const s of img.reader.snapshots) {
          const l1 = await img.reader.snapshotL1(s);
          total += await countData(img.reader, l1, prev, signal);
          views.push({ image: k, l1, size: s.size, snapshot: '', qcow2Snapshot: s.name });
          prev = l1;
        }
        total += await countData(img.reader, img.reader.active, prev, signal);
        views.push({ image: k, l1: img.reader.active, size: img.size, snapshot: null });
      } else {
        total += await countData(img.reader, img.reader.active, undefined, signal);
        views.push({ image: k, l1: img.reader.active, size: img.size, snapshot: '' });
      }
    }

    let volume: Volume;
    let created = false;
    let createdDir: { dir: string; existed: boolean; before: Set<string> } | null = null;
    if (typeof target === 'string') {
      const dir = target;
      const existed = exists(dir);
      if (holdsVolume(dir)) {
        volume = await Volume.open(new NodeDirNamespace(dir));
      } else {
        const blockSize = options.blockSize ?? Math.min(1 << 20, Math.max(4096, topReader.clusterSize));
        const before = existed ? new Set(readdirSync(dir)) : new Set<string>();
        if (!existed) mkdirSync(dir, { recursive: true, mode: DIR_MODE });
        createdDir = { dir, existed, before };
        try {
          volume = await Volume.create(new NodeDirNamespace(dir), { size: top.size, blockSize });
        } catch (e) {
          removeCreated(createdDir);
          throw e;
        }
        created = true;
      }
    } else {
      volume = target;
    }
    try {
      if (volume.size !== top.size) {
        throw new StrataError('invalid-argument', `${imagePath} has a virtual size of ${top.size} bytes but the volume has ${volume.size}; import into a new directory (the volume is then created with the right size) or create one with --size ${top.size}.`);
      }
      // Name the snapshots now, so a clash is found before anything is written.
      const taken = new Set(volume.snapshots().map((s) => s.name));
      const imported: ImportedImage[] = [];
      const internal: { qcow2: string; snapshot: string }[] = [];
      for (const view of views) {
        const img = chain[view.image]!;
        if (view.snapshot === null) continue;
        view.snapshot = uniqueName(view.qcow2Snapshot ?? basename(img.path), taken);
        if (view.qcow2Snapshot !== undefined) internal.push({ qcow2: view.qcow2Snapshot, snapshot: view.snapshot });
      }
      for (let k = chain.length - 1; k >= 0; k--) {
        const img = chain[k]!;
        const v = k === 0 ? null : views.find((x) => x.image === k)!.snapshot;
        imported.push({ path: img.path, format: img.format, size: img.size, snapshot: v });
      }
      const copier = await volume.staged(
        'last-snapshot',
        async (stage) => {
          // Nothing under the change's first layer (a new volume, or one without snapshots): no zeros to write.
          const copier = new Copier(volume, total, options, volume.layerChain().length === 1);
          for (let i = 0; i < views.length; i++) {
            const view = views[i]!;
            const img = chain[view.image]!;
            const prev = views[i - 1];
            const sameImage = prev !== undefined && prev.image === view.image;
            const belowSnapshot = view.image < chain.length - 1 ? views.filter((x) => x.image === view.image + 1).at(-1)!.snapshot! : null;
            copier.image = img.path;
            if (!img.reader) await copier.copyRaw(img);
            else await copier.copyView(img.reader, view.l1!, view.size, sameImage ? prev!.l1! : undefined, view.image === chain.length - 1, belowSnapshot);
            await volume.flush();
            if (view.snapshot !== null) await stage.snapshot(view.snapshot);
          }
          return copier;
        },
        { signal, onCommit: options.onCommit },
      );
      const result: ImportQcow2Result = {
        size: top.size,
        clusterSize: topReader.clusterSize,
        blockSize: volume.blockSize,
        chain: imported,
        internalSnapshots: internal,
        bytesCopied: copier.copied,
        createdVolume: created,
      };
      if (typeof target === 'string') await volume.close();
      return result;
    } catch (e) {
      if (typeof target === 'string') {
        await volume.close().catch(() => {});
        if (createdDir) removeCreated(createdDir);
      }
      throw e;
    }
  } finally {
    for (const img of chain) await img.store.close().catch(() => {});
  }
}

/** Bytes of cluster data a view will copy (and, on the way, a check of every L2 entry). */
async function countData(reader: Qcow2Reader, l1: L1Table, against: L1Table | undefined, signal?: AbortSignal): Promise<number> {
  let n = 0;
  for await (const e of reader.extents(l1, against, signal)) if (e.kind === 'data' || e.kind === 'compressed') n += e.count * reader.clusterSize;
  return n;
}

/**
 * Writes views into the volume in batches of up to 32 MiB of guest data, scattered or not: each
 * batch is one Volume.writeRanges call (one hash pass, usually one store write, since the
 * volume hands out consecutive slots). Data clusters are not read when met but when the batch is
 * handed over, merged into one read per host-contiguous stretch: qemu lays data clusters out in
 * guest order, so a batch of a half-allocated image is one or two reads, straight into the
 * batch buffer. The next batch is read and hashed while the previous one is being written.
 */
class Copier {
  copied = 0;
  image = '';
  private buf: Uint8Array;
  private spare: Uint8Array;
  private inFlight: Promise<void> | null = null;
  /** guest ranges of the batch, back to back in `buf` */
  private ranges: WriteRange[] = [];
  private batchLen = 0;
  /** deferred reads into `buf`: flat [host offset, buffer offset, length]* */
  private reads: number[] = [];
  private readStore: Store | null = null;
  private zeroStart = -1;
  private zeroEnd = -1;
  private sinceWriteback = 0;
  /** nothing below the layer being written holds data (a fresh volume, base image) */
  private emptyBelow: boolean;

  constructor(
    private readonly volume: Volume,
    private readonly total: number,
    private readonly options: ImportQcow2Options,
    fresh: boolean,
  ) {
    // Page-aligned, so the volume's data file takes the batches with direct I/O (NodeFileStore).
    this.buf = alignedBytes(BATCH);
    this.spare = alignedBytes(BATCH);
    this.emptyBelow = fresh;
  }

  private checkAbort(): void {
    if (this.options.signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
  }

  private progress(): void {
    this.options.onProgress?.({ phase: 'copy', image: this.image, done: this.copied, total: this.total });
  }

  /** Room in the batch for guest bytes [at, at+len) (at most one batch); returns its offset in `buf`. */
  private async place(at: number, len: number): Promise<number> {
    if (len > BATCH) throw new Error('internal: a piece larger than a batch');
    await this.flushZeros();
    if (this.batchLen + len > BATCH) await this.flushBatch();
    const last = this.ranges[this.ranges.length - 1];
    if (last && last.offset + last.length === at) last.length += len;
    else this.ranges.push({ offset: at, length: len });
    const pos = this.batchLen;
    this.batchLen += len;
    this.copied += len;
    return pos;
  }

  /** Append guest bytes [at, at+len), filled now by `fill`. */
  private async append(at: number, len: number, fill: (target: Uint8Array) => Promise<void>): Promise<void> {
    const pos = await this.place(at, len);
    await fill(this.buf.subarray(pos, pos + len));
  }

  /** Append guest bytes [at, at+len) that sit at `host` in `store`, read when the batch is handed over. */
  private async appendHost(store: Store, host: number, at: number, len: number): Promise<void> {
    if (this.readStore !== store) {
      await this.readPending();
      this.readStore = store;
    }
    const pos = await this.place(at, len);
    const r = this.reads;
    const k = r.length - 3;
    if (k >= 0 && r[k]! + r[k + 2]! === host && r[k + 1]! + r[k + 2]! === pos) r[k + 2]! += len;
    else r.push(host, pos, len);
  }

  private async readPending(): Promise<void> {
    const r = this.reads;
    if (r.length === 0) return;
    const store = this.readStore!;
    const ios: Promise<void>[] = [];
    for (let k = 0; k < r.length; k += 3) ios.push(store.readInto(r[k]!, this.buf.subarray(r[k + 1]!, r[k + 1]! + r[k + 2]!)));
    r.length = 0;
    await Promise.all(ios);
  }

  /**
   * Hand the batch to the volume and return at once: the next batch is read into the other
   * buffer while this one is written. At most one write is in flight.
   */
  private async flushBatch(): Promise<void> {
    if (this.batchLen === 0) return;
    this.checkAbort();
    await this.readPending();
    const data = this.buf.subarray(0, this.batchLen);
    // Hash now, while the previous batch is still being written (the volume would do it after).
    const bs = this.volume.blockSize;
    const scan = this.ranges.every((r) => r.offset % bs === 0 && r.length % bs === 0) ? scanBlocks(data, bs) : undefined;
    await this.settle();
    this.inFlight = this.volume.writeRanges(this.ranges, data, scan);
    this.inFlight.catch(() => {}); // observed by settle()
    this.sinceWriteback += data.length;
    if (this.sinceWriteback >= WRITEBACK_EVERY) {
      // Let the device write what came before while we go on; the final flush then waits less.
      this.volume.startWriteback();
      this.sinceWriteback = 0;
    }
    [this.buf, this.spare] = [this.spare, this.buf];
    this.ranges = [];
    this.batchLen = 0;
    this.progress();
  }

  /** Make [from, to) read as zeros where something below would show through. */
  private async zero(from: number, to: number): Promise<void> {
    if (to <= from || this.emptyBelow) return;
    if (this.zeroStart >= 0 && this.zeroEnd === from) {
      this.zeroEnd = to;
      return;
    }
    await this.flushZeros();
    this.zeroStart = from;
    this.zeroEnd = to;
  }

  private async flushZeros(): Promise<void> {
    if (this.zeroStart < 0) return;
    const from = this.zeroStart;
    const to = this.zeroEnd;
    this.zeroStart = this.zeroEnd = -1;
    await this.flushBatch();
    await this.settle();
    this.checkAbort();
    for (const e of await this.volume.map(from, to - from)) {
      if (e.data) await this.volume.writeZeroes(e.start, e.length);
    }
  }

  private async settle(): Promise<void> {
    const w = this.inFlight;
    this.inFlight = null;
    if (w) await w;
  }

  private async finish(): Promise<void> {
    await this.flushBatch();
    await this.flushZeros();
    await this.settle();
  }

  /**
   * One view of a qcow2 image (its active L1 or a snapshot's). `against`: the previous view of the
   * same image, already in the volume: only differing clusters are written. `isBase`: no backing
   * image, so unallocated reads as zeros. `below`: the snapshot holding the backing image's view.
   */
  async copyView(reader: Qcow2Reader, l1: L1Table, size: number, against: L1Table | undefined, isBase: boolean, below: string | null): Promise<void> {
    const cs = reader.clusterSize;
    const limit = Math.min(size, this.volume.size);
    const belowView: VolumeReader | null = below ? this.volume.openSnapshot(below) : null;
    for await (const e of reader.extents(l1, against, this.options.signal)) {
      const from = e.cluster * cs;
      if (from >= limit) break;
      const to = Math.min(limit, (e.cluster + e.count) * cs);
      await this.extent(reader, e, from, to, against !== undefined, isBase, belowView);
    }
    // Past the view's size everything reads as zeros.
    if (limit < this.volume.size) await this.zero(limit, this.volume.size);
    await this.finish();
    this.emptyBelow = false;
  }

  private async extent(reader: Qcow2Reader, e: Qcow2Extent, from: number, to: number, diff: boolean, isBase: boolean, below: VolumeReader | null): Promise<void> {
    switch (e.kind) {
      case 'data':
      case 'compressed': {
        // Data extents are at most 8 MiB (the reader caps runs), so one piece covers one extent.
        if (e.kind === 'data') await this.appendHost(reader.store, e.host, from, to - from);
        else await this.append(from, to - from, (t) => reader.readClusters(e, t));
        return;
      }
      case 'zero':
        await this.zero(from, to);
        return;
      case 'unallocated':
        if (isBase) await this.zero(from, to);
        else if (diff && below) {
          // The previous view had its own cluster here; this one shows the backing image again.
          for (let at = from; at < to; at += BATCH) {
            const end = Math.min(to, at + BATCH);
            await this.append(at, end - at, (t) => below.readInto(at, t));
          }
        }
        return;
    }
  }

  /** A raw backing image: its bytes (zero blocks store nothing), then zeros past its end. */
  async copyRaw(img: ChainImage): Promise<void> {
    const limit = Math.min(img.size, this.volume.size);
    for (let at = 0; at < limit; at += BATCH) {
      const end = Math.min(limit, at + BATCH);
      await this.appendHost(img.store, at, at, end - at);
    }
    if (limit < this.volume.size) await this.zero(limit, this.volume.size);
    await this.finish();
    this.emptyBelow = false;
  }
}

/** Open the image and its backing files, top first, checking paths, loops and depth. */
async function openChain(imagePath: string, options: ImportQcow2Options): Promise<ChainImage[]> {
  const chain: ChainImage[] = [];
  try {
    const topReal = realOrNotFound(imagePath, imagePath);
    const allowDir = realOrNotFound(options.allowDir ?? dirname(resolve(imagePath)), options.allowDir ?? dirname(imagePath));
    const seen = new Set<string>();
    let path = imagePath;
    let real = topReal;
    let format: 'qcow2' | 'raw' | null = 'qcow2';
    for (let depth = 0; ; depth++) {
      if (depth >= MAX_CHAIN_DEPTH) throw new StrataError('unsupported', `The backing chain of ${imagePath} is deeper than ${MAX_CHAIN_DEPTH} images.`);
      if (seen.has(real)) throw new StrataError('corrupt', `The backing chain of ${imagePath} loops: ${path} is already part of it${real === topReal && depth === 1 ? ' (the image names itself as its backing file)' : ''}.`);
      seen.add(real);
      const store = await NodeFileStore.open(real, { readOnly: true, syncMaxBytes: BATCH });
      const img: ChainImage = { path, format: 'qcow2', store, reader: null, size: store.size };
      chain.push(img);
      const magic = store.size >= 4 && isQcow2Magic(await store.read(0, 4));
      if (depth === 0 && !magic) throw new StrataError('invalid-argument', `${imagePath} is not a qcow2 image (no QFI\\xfb magic).`);
      if (format === null && !magic) {
        // No backing format recorded: raw, unless its content says it is some other container.
        const d = await detectStore(store);
        if (d.format !== 'raw') {
          throw new StrataError('unsupported', `The backing file of ${chain[depth - 1]!.path} (${path}) is ${d.what}; only qcow2 and raw backing files can be imported. Convert the whole chain into one image first (\`qemu-img convert -O qcow2 ${imagePath} OUT.qcow2\`) and import that.`);
        }
      }
      if (format === 'raw' || (format === null && !magic)) {
        img.format = 'raw';
        break;
      }
      if (!magic) throw new StrataError('corrupt', `${path} is named as a qcow2 backing file but is not a qcow2 image.`);
      img.reader = await Qcow2Reader.open(store, path);
      img.size = img.reader.size;
      if (depth === 0) checkVolumeFits(img.reader.size, path);
      const backing = img.reader.backingFile;
      if (backing === null) break;
      const fmt = img.reader.backingFormat;
      if (fmt !== null && fmt !== 'qcow2' && fmt !== 'raw') throw new StrataError('unsupported', `${path} has a ${fmt} backing file (${backing}); only qcow2 and raw backing files can be imported. Convert it first.`);
      format = fmt as 'qcow2' | 'raw' | null;
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(backing) || backing.startsWith('json:')) throw new StrataError('unsupported', `${path} has a backing file that is not a local file (${backing}).`);
      const next = isAbsolute(backing) ? backing : resolve(dirname(resolve(path)), backing);
      let nextReal: string;
      try {
        nextReal = realpathSync(next);
      } catch {
        if (!isInside(resolve(next), allowDir) && !isInside(next, allowDir)) throw escapeError(path, backing, allowDir);
        throw new StrataError('not-found', `The backing file of ${path} (${backing}) does not exist at ${next}.`);
      }
      if (!isInside(nextReal, allowDir)) throw escapeError(path, backing, allowDir);
      if (!statSync(nextReal).isFile()) throw new StrataError('invalid-argument', `The backing file of ${path} (${backing}) is not a regular file.`);
      path = next;
      real = nextReal;
    }
    return chain;
  } catch (e) {
    for (const img of chain) await img.store.close().catch(() => {});
    throw e;
  }
}

function checkVolumeFits(size: number, path: string): void {
  if (size === 0) throw new StrataError('invalid-argument', `${path} has a virtual size of 0 bytes; there is nothing to import.`);
}

function escapeError(path: string, backing: string, allowDir: string): StrataError {
  return new StrataError('invalid-argument', `The backing file of ${path} (${backing}) is outside ${allowDir}; backing files are only followed inside that directory. Pass allowDir (CLI: --allow-dir DIR) to allow another one.`);
}

function isInside(p: string, dir: string): boolean {
  const r = relative(dir, p);
  return r !== '' && !r.startsWith('..' + sep) && r !== '..' && !isAbsolute(r);
}

function realOrNotFound(p: string, shown: string): string {
  try {
    return realpathSync(p);
  } catch {
    throw new StrataError('not-found', `${shown} does not exist.`);
  }
}

function exists(p: string): boolean {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
}

/** Remove what a failed import created: the directory, or the files that were not there before. */
function removeCreated(c: { dir: string; existed: boolean; before: Set<string> }): void {
  if (!c.existed) {
    rmSync(c.dir, { recursive: true, force: true });
    return;
  }
  for (const f of readdirSync(c.dir)) if (!c.before.has(f)) rmSync(join(c.dir, f), { recursive: true, force: true });
}

/** A valid, unused snapshot name made from `raw` (a file name or a qcow2 snapshot name). */
export function snapshotNameFor(raw: string, taken: Set<string>): string {
  return uniqueName(raw, taken);
}

function uniqueName(raw: string, taken: Set<string>): string {
  let base = raw.replace(/[^A-Za-z0-9._+:-]/g, '_');
  if (!/^[A-Za-z0-9]/.test(base)) base = 's' + base;
  base = base.slice(0, 120);
  let name = base;
  for (let n = 2; taken.has(name) || !SNAPSHOT_NAME.test(name); n++) name = `${base}-${n}`;
  taken.add(name);
  return name;
}
