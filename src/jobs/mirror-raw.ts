import { StrataError } from '../errors.js';
import { ShadowVolume } from '../shadow/shadow-volume.js';
import type { Store, StoreNamespace } from '../store/store.js';
import type { VolumeJobAccess } from '../volume/job-access.js';
import type { Volume } from '../volume/volume.js';
import type { MirroredWrite, WriteMirror } from '../volume/write-mirror.js';
import { KIND_DATA, viewSource } from './copy-pass.js';
import { BaseJob, type JobOptions } from './job.js';
import { liveBlocks, targetFailed } from './mirror.js';

/**
 * The mirror job to a raw image: copy the live (flattened) view of a volume into one Store — a
 * raw block device or a raw file — while it is read and written, then switch over.
 *
 * A device is a Store, not a namespace, so the copy is the plain image: block b at byte b * bs.
 * New writes are sent to the image by a write mirror (under the volume's write lock); one pass
 * copies the rest, and writes each batch under the write lock after checking that the writer has
 * not written those blocks since the pass began, so old data never overwrites new. With
 * `switchOver` (default) the source then refuses further writes (`closed`, naming the move); the
 * image is flushed (fsync) first, so it holds exactly the volume's bytes at that moment. The
 * image is then the volume: use `target` (the Store) directly, or pass `shadows` to get it back
 * as a {@link ShadowVolume} (in-place volume with shadow copies, src/shadow) as `volume`.
 */
export interface RawMirrorOptions extends JobOptions {
  /** retire the source at the end (default true); false leaves a point-in-time image and the source in use */
  switchOver?: boolean;
  /** bytes copied per batch (default 8 MiB) */
  batchBytes?: number;
  /** where the copy goes, for messages (a path) */
  targetLabel?: string;
  /**
   * The target already reads as zeros wherever the volume does, so zero blocks are skipped.
   * Default: true for a resizable store that starts empty (a new file); a device or a file with
   * content gets every block written.
   */
  zeroed?: boolean;
  /** after the switch-over, open the image as a ShadowVolume keeping its shadow copies here */
  shadows?: StoreNamespace;
}

/** Start mirroring `volume` into the raw image `target`. Refusals throw here. */
export function mirrorRaw(volume: Volume, target: Store, options: RawMirrorOptions = {}): RawMirrorJob {
  const label = options.targetLabel ?? 'the raw target';
  if (target.readOnly) throw new StrataError('read-only', `${label} is open read-only; open it writable to mirror into it.`);
  if (!target.resizable && target.size < volume.size) {
    throw new StrataError('out-of-range', `${label} holds ${target.size} bytes but the volume is ${volume.size} bytes; use a device at least as large as the volume.`);
  }
  const access = volume.beginJob('mirror');
  return new RawMirrorJob(access, volume, target, options).start();
}

export class RawMirrorJob extends BaseJob {
  /** After a successful switch-over with `shadows`: the image as an in-place volume. */
  volume: ShadowVolume | null = null;

  constructor(
    private readonly access: VolumeJobAccess,
    private readonly source: Volume,
    readonly target: Store,
    private readonly options: RawMirrorOptions,
  ) {
    super('mirror', options);
    this.yieldTo(() => access.foregroundOps());
  }

  protected async run(): Promise<void> {
    const a = this.access;
    const bs = a.blockSize;
    const size = this.source.size;
    const t = this.target;
    const label = this.options.targetLabel ?? 'the raw target';
    const zeroed = this.options.zeroed ?? (t.resizable && t.size === 0);
    const mirrored = new RawImageMirror(t, bs, size);
    let todo: number[] = [];
    try {
      await this.checkpoint();
      await a.exclusive(async () => {
        await a.flushActive();
        if (t.resizable && t.size !== size) await t.truncate(size);
        todo = zeroed ? liveBlocks(a) : Array.from({ length: Math.ceil(size / bs) }, (_, b) => b);
        a.setMirror(mirrored);
      });
      this.setTotal(todo.length * bs);
      await this.copy(todo, zeroed, mirrored, label);
      await this.checkpoint();
      await a.exclusive(async () => {
        if (mirrored.error) throw targetFailed(mirrored.error, label);
        await t.flush();
        a.setMirror(null);
        if (this.options.switchOver ?? true) a.retire(`This volume moved to ${label} (mirror job ${this.id}); use the raw image there.`);
      });
    } finally {
      a.release();
    }
    if ((this.options.switchOver ?? true) && this.options.shadows) this.volume = await ShadowVolume.open(t, this.options.shadows);
  }

  /** The copy pass: read a batch of the view while the previous one is written. */
  private async copy(todo: number[], zeroed: boolean, mirrored: RawImageMirror, label: string): Promise<void> {
    const bs = this.access.blockSize;
    const per = Math.max(1, Math.min(Math.floor((this.options.batchBytes ?? 8 << 20) / bs), todo.length));
    const bufs = [0, 1].map(() => ({ buf: new Uint8Array(per * bs), hashes: new Uint8Array(per * 16), kinds: new Uint8Array(per) }));
    const source = viewSource(this.access.view);
    let inFlight: Promise<void> | null = null;
    try {
      for (let i = 0, n = 0; i < todo.length; i += per, n++) {
        const { buf, hashes, kinds } = bufs[n & 1]!;
        const batch = todo.slice(i, i + per);
        await source.read(batch, buf, hashes, kinds);
        if (inFlight) {
          const p: Promise<void> = inFlight;
          inFlight = null;
          await p;
        }
        inFlight = this.writeBatch(batch, buf, kinds, zeroed, mirrored).then(async () => {
          await this.step(batch.length * bs);
          if (mirrored.error) throw targetFailed(mirrored.error, label);
        });
      }
    } finally {
      if (inFlight) await inFlight;
    }
  }

  /** Under the write lock: write the batch's runs the writer has not overwritten since. */
  private writeBatch(batch: number[], buf: Uint8Array, kinds: Uint8Array, zeroed: boolean, mirrored: RawImageMirror): Promise<void> {
    const bs = this.access.blockSize;
    const piece = Math.max(1, Math.floor(WRITE_PIECE / bs));
    return this.access.exclusive(async () => {
      const want = (k: number) => (kinds[k] === KIND_DATA || !zeroed) && !mirrored.written.has(batch[k]!);
      const ios: Promise<void>[] = [];
      for (let k = 0; k < batch.length; ) {
        if (!want(k)) {
          k++;
          continue;
        }
        let e = k + 1;
        while (e < batch.length && e - k < piece && batch[e] === batch[k]! + (e - k) && want(e)) e++;
        const io = mirrored.put(batch[k]!, buf.subarray(k * bs, e * bs));
        if (io) ios.push(io);
        k = e;
      }
      await Promise.all(ios);
    });
  }
}

/** Bytes per store write: several writes in flight let the thread pool copy in parallel. */
const WRITE_PIECE = 2 << 20;

/**
 * A write mirror into a raw image: each mirrored block is written at block * blockSize (known-zero
 * entries as zeros), clipped to the volume's size; `written` remembers which blocks it wrote.
 */
export class RawImageMirror implements WriteMirror {
  readonly written = new Set<number>();
  error: unknown = null;
  bytes = 0;
  private zeros = new Uint8Array(0);

  constructor(
    private readonly store: Store,
    private readonly blockSize: number,
    private readonly size: number,
  ) {}

  /** Write `data` (whole blocks from `block` on) clipped to the volume's size; null when nothing is left. */
  put(block: number, data: Uint8Array): Promise<void> | null {
    const at = block * this.blockSize;
    const len = Math.min(data.length, this.size - at);
    if (len <= 0) return null;
    this.bytes += len;
    return this.store.write(at, len < data.length ? data.subarray(0, len) : data);
  }

  async write(w: MirroredWrite): Promise<void> {
    const bs = this.blockSize;
    const ios: Promise<void>[] = [];
    for (let k = 0; k < w.blocks.length; ) {
      const zero = !!w.zero?.[k];
      let e = k + 1;
      // runs of consecutive blocks, all zero or all data with consecutive bytes in w.data
      while (
        e < w.blocks.length &&
        w.blocks[e] === w.blocks[k]! + (e - k) &&
        !!w.zero?.[e] === zero &&
        (zero || w.dataIndex[e] === w.dataIndex[k]! + (e - k))
      ) e++;
      let data: Uint8Array;
      if (zero) {
        if (this.zeros.length < (e - k) * bs) this.zeros = new Uint8Array((e - k) * bs);
        data = this.zeros.subarray(0, (e - k) * bs);
      } else {
        const i0 = w.dataIndex[k]!;
        data = w.data.subarray(i0 * bs, (i0 + (e - k)) * bs);
      }
      const io = this.put(w.blocks[k]!, data);
      if (io) ios.push(io);
      k = e;
    }
    for (const b of w.blocks) this.written.add(b);
    try {
      await Promise.all(ios);
    } catch (e) {
      this.error ??= e;
    }
  }
}
