import { StrataError } from '../errors.js';
import { MANIFEST_FORMAT, MANIFEST_SLOTS, MANIFEST_VERSION, ManifestStore, layerId, type Manifest } from '../format/manifest.js';
import type { StoreNamespace } from '../store/store.js';
import type { VolumeJobAccess } from '../volume/job-access.js';
import { Layer, dataName, mapName } from '../volume/layer.js';
import { chainIds, cloneManifest } from '../volume/tree.js';
import { Volume } from '../volume/volume.js';
import { LayerMirror } from '../volume/write-mirror.js';
import { copyPass, layerSource, viewSource } from './copy-pass.js';
import { BaseJob, type JobOptions } from './job.js';
import { JobJournal } from './job-journal.js';

/**
 * The mirror job: copy a live volume into another namespace (OPFS to IndexedDB, one directory to
 * another, browser to server...) while it is read and written, then switch over.
 *
 * A write mirror sends every new write of the active layer to the copy too, while one pass
 * copies what was there before (sealed layers never change while the job holds the volume);
 * a block the mirror wrote is never overwritten by the pass. The copy becomes a volume only at
 * the end, when its manifest is written, under the source's write lock: a crash or cancel before
 * that leaves no volume at the target (its partial layer files are deleted when possible) and
 * the source untouched. With `switchOver` (default), the source then refuses further writes
 * (`closed`, naming the move) and `target` is the copy, opened for writing.
 */
export interface MirrorOptions extends JobOptions {
  /** copy the live view into a single base layer (snapshots are not copied); default false: every layer and snapshot */
  flatten?: boolean;
  /** retire the source and open the copy at the end (default true); false leaves a point-in-time copy and the source in use */
  switchOver?: boolean;
  /** bytes copied per batch (default 8 MiB) */
  batchBytes?: number;
  /** where the copy goes, for messages and the job journal (e.g. a directory) */
  targetLabel?: string;
  /** keep a job journal record in the source's namespace (default true) */
  journal?: boolean;
}

/** Start mirroring `volume` into the (empty) namespace `target`. Refusals throw here. */
export function mirror(volume: Volume, target: StoreNamespace, options: MirrorOptions = {}): MirrorJob {
  if (target.readOnly) throw new StrataError('read-only', 'The mirror target is read-only; give a writable namespace.');
  const access = volume.beginJob('mirror');
  return new MirrorJob(access, volume, target, options).start();
}

export class MirrorJob extends BaseJob {
  /** After a successful switch-over: the copy, open for writing. */
  target: Volume | null = null;
  private readonly created: Layer[] = [];

  constructor(
    private readonly access: VolumeJobAccess,
    private readonly source: Volume,
    private readonly ns: StoreNamespace,
    private readonly options: MirrorOptions,
  ) {
    super('mirror', options);
    this.yieldTo(() => access.foregroundOps());
  }

  protected async run(): Promise<void> {
    const a = this.access;
    const bs = a.blockSize;
    const label = this.options.targetLabel ?? 'the target';
    let journal: JobJournal | null = null;
    let committed = false;
    try {
      for (const name of MANIFEST_SLOTS) {
        if (await this.ns.exists(name)) throw new StrataError('exists', `${label} already holds a volume; mirror into an empty place.`);
      }
      await this.checkpoint();
      const flatten = this.options.flatten === true;
      let mirrorTo: LayerMirror | null = null;
      const plan: { dst: Layer; todo: number[]; source: 'view' | Layer; live: boolean }[] = [];
      await a.exclusive(async () => {
        await a.flushActive();
        if (this.options.journal ?? true) {
          journal = await JobJournal.open(a.ns);
          const proc = (globalThis as { process?: { pid?: number } }).process;
          await journal.put({ id: this.id, kind: 'mirror', params: { flatten, target: this.options.targetLabel ?? null }, started: new Date().toISOString(), pid: proc?.pid ?? null, host: null });
        }
        const m = a.manifest();
        if (flatten) {
          const dst = await this.createLayer(layerId(1));
          plan.push({ dst, todo: liveBlocks(a), source: 'view', live: true });
          mirrorTo = new LayerMirror(dst);
        } else {
          for (const r of m.layers) {
            const src = a.layer(r.id);
            const dst = await this.createLayer(r.id);
            const todo: number[] = [];
            for (const [b] of src.entries()) todo.push(b);
            todo.sort((x, y) => x - y);
            const live = r.id === m.active;
            plan.push({ dst, todo, source: src, live });
            if (live) mirrorTo = new LayerMirror(dst);
          }
        }
        await this.ns.sync();
        a.setMirror(mirrorTo);
      });
      const mirrored = mirrorTo as LayerMirror | null;
      this.setTotal(plan.reduce((n, p) => n + p.todo.length * bs, 0));
      for (const p of plan) {
        await copyPass(p.source === 'view' ? viewSource(a.view) : layerSource(p.source, this.source.label), p.dst, p.todo, {
          batchBytes: this.options.batchBytes ?? 8 << 20,
          exclusive: (fn) => a.exclusive(fn),
          stale: (b) => p.live && mirrored !== null && mirrored.written.has(b),
          step: async (bytes) => {
            await this.step(bytes);
            if (mirrored?.error) throw targetFailed(mirrored.error, label);
          },
        });
      }
      await this.checkpoint();
      await a.exclusive(async () => {
        if (mirrored?.error) throw targetFailed(mirrored.error, label);
        await a.flushActive();
        for (const p of plan) await p.dst.flush();
        const m = flatten ? flatManifest(a.manifest(), layerId(1)) : layersManifest(a.manifest(), this.created);
        await ManifestStore.create(this.ns, m);
        committed = true;
        a.setMirror(null);
        for (const l of this.created) await l.close();
        if (this.options.switchOver ?? true) {
          a.retire(`This volume moved to ${label} (mirror job ${this.id}); use the copy.`);
          this.target = await Volume.open(this.ns);
        }
      });
      if (journal) await a.exclusive(() => journal!.remove(this.id));
    } finally {
      a.release();
      if (!committed) await this.abandon();
    }
  }

  private async createLayer(id: string): Promise<Layer> {
    const l = await Layer.create(this.ns, id, this.access.blockSize);
    this.created.push(l);
    return l;
  }

  /** Delete the partial copy (best effort: the target is not a volume without its manifest anyway). */
  private async abandon(): Promise<void> {
    for (const l of this.created) {
      try {
        await l.close();
        for (const f of [dataName(l.id), mapName(l.id)]) if (await this.ns.exists(f)) await this.ns.delete(f);
      } catch {
        // the target may be gone (crash, quota); nothing there reads as a volume
      }
    }
    await this.ns.sync().catch(() => {});
  }
}

/** Blocks some layer of the live chain holds (ascending): all others read as zeros. Call inside `exclusive`. */
export function liveBlocks(a: VolumeJobAccess): number[] {
  const m = a.manifest();
  const owned = new Set<number>();
  for (const id of chainIds(m, m.active)) for (const [b] of a.layer(id).entries()) owned.add(b);
  return [...owned].sort((x, y) => x - y);
}

/** The copy of every layer: the source's manifest with fresh map generations and the copies' content IDs. */
function layersManifest(m: Manifest, layers: Layer[]): Manifest {
  const next = cloneManifest(m);
  for (const r of next.layers) {
    delete r.mapGen;
    if (r.sealed) r.contentId = layers.find((l) => l.id === r.id)!.contentId();
  }
  return next;
}

/** One unsealed base layer holding the live view. */
function flatManifest(now: Manifest, id: string): Manifest {
  return {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    uuid: now.uuid,
    size: now.size,
    blockSize: now.blockSize,
    layers: [{ id, parent: null, sealed: false, contentId: null, created: new Date().toISOString() }],
    active: id,
    snapshots: [],
    nextLayer: 2,
  };
}

export function targetFailed(e: unknown, label: string): StrataError {
  if (e instanceof StrataError) return new StrataError(e.code, `Writing the copy to ${label} failed: ${e.message}`, { cause: e });
  return new StrataError('io', `Writing the copy to ${label} failed: ${(e as Error)?.message ?? e}`, { cause: e });
}
