import type { Volume, VolumeReader } from '../../volume/volume.js';
import type { DirtyBitmap } from './dirty-bitmap.js';

/** One NBD export: a view of the volume that clients attach to by name. */
export interface NbdExport {
  /** the canonical name (what NBD_OPT_LIST shows) */
  name: string;
  description: string;
  size: number;
  /** the volume's block size: advertised as the preferred I/O size */
  blockSize: number;
  reader: VolumeReader;
  /** present when writes are allowed (the live volume, opened writable, served without --read-only) */
  writer?: Volume;
  /** the volume this export views (the live one, or the one its snapshot belongs to) */
  volume: Volume;
  /** a dirty bitmap served as the `qemu:dirty-bitmap:NAME` meta context (dirty-bitmap.ts) */
  bitmap?: DirtyBitmap;
}

/**
 * The exports of one served volume. The default export ('') is the served view: the live
 * volume, or the snapshot of DIR@NAME. The live volume is also exported under `volumeName`
 * (the directory's base name), and every snapshot under its own name, read-only; snapshots are
 * looked up when a client asks, so one taken while serving appears. A snapshot whose name equals
 * `volumeName` is shadowed by the live volume's export.
 */
export class ExportRegistry {
  constructor(
    private volume: Volume,
    private readonly volumeName: string,
    /** the snapshot served as the default export, if any */
    private readonly defaultSnapshot: string | undefined,
    private readonly readOnly: boolean,
    /** a point of the write log served as the default export instead (read-only): its name (`mark:X`) and view */
    private readonly defaultView?: { name: string; reader: VolumeReader },
  ) {}

  /**
   * Serve `next` from now on (a mirror's copy at its switch-over; same size and block size).
   * Exports looked up before keep viewing the old volume until passed through {@link current}.
   */
  switchTo(next: Volume): void {
    this.volume = next;
  }

  /**
   * The export `e` stands for now: itself while its volume is still the served one, else the
   * export of the same name on the volume served now (a snapshot the new volume lacks, as after
   * a flattening mirror, stays on the old volume, which keeps it readable).
   */
  current(e: NbdExport): NbdExport {
    if (e.volume === this.volume) return e;
    try {
      return this.lookup(e.name) ?? e;
    } catch {
      return e;
    }
  }

  /** The dirty bitmap of the default export (and of the export of its own name), if any. */
  bitmap: DirtyBitmap | undefined;

  /** The export named `name`, or undefined. */
  lookup(name: string): NbdExport | undefined {
    const e = this.find(name);
    if (e && this.bitmap && (name === '' || e.name === this.find('')!.name)) e.bitmap = this.bitmap;
    return e;
  }

  private find(name: string): NbdExport | undefined {
    if (this.defaultView && (name === '' || name === this.defaultView.name)) return this.view(this.defaultView.name, this.defaultView.reader);
    if (name === '') return this.defaultSnapshot === undefined ? this.live() : this.snapshot(this.defaultSnapshot);
    if (name === this.volumeName && this.defaultSnapshot === undefined && !this.defaultView) return this.live();
    if (this.volume.snapshots().some((s) => s.name === name)) return this.snapshot(name);
    return undefined;
  }

  /** Every export with its canonical name: the default first. */
  list(): NbdExport[] {
    const out: NbdExport[] = [];
    const def = this.lookup('')!;
    out.push({ ...def, name: '' });
    if (this.defaultView) out.push(this.view(this.defaultView.name, this.defaultView.reader));
    else if (this.defaultSnapshot === undefined) out.push(this.live());
    for (const s of this.volume.snapshots()) {
      if (s.name !== this.volumeName || this.defaultSnapshot !== undefined) out.push(this.snapshot(s.name));
    }
    return out;
  }

  private live(): NbdExport {
    const writable = !this.readOnly && !this.volume.readOnly;
    return {
      name: this.volumeName,
      description: `stratadisk volume ${this.volumeName}${writable ? '' : ' (read-only)'}`,
      size: this.volume.size,
      blockSize: this.volume.blockSize,
      reader: this.volume,
      volume: this.volume,
      ...(writable ? { writer: this.volume } : {}),
    };
  }

  private view(name: string, reader: VolumeReader): NbdExport {
    return { name, description: `${this.volumeName} at ${name} of its write log (read-only)`, size: reader.size, blockSize: reader.blockSize, reader, volume: this.volume };
  }

  private snapshot(name: string): NbdExport {
    return {
      name,
      description: `snapshot ${name} of ${this.volumeName} (read-only)`,
      size: this.volume.size,
      blockSize: this.volume.blockSize,
      reader: this.volume.openSnapshot(name),
      volume: this.volume,
    };
  }
}
