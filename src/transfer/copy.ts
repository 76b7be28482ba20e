import { StrataError, isStrataError } from '../errors.js';
import {
  MANIFEST_FORMAT,
  MANIFEST_SLOTS,
  MANIFEST_VERSION,
  ManifestStore,
  layerId,
  readManifestSlots,
  type LayerRecord,
  type Manifest,
  type SnapshotRecord,
} from '../format/manifest.js';
import type { NamespaceLock, StoreNamespace } from '../store/store.js';
import { loadKernels } from '../wasm/index.js';
import { Layer, dataName, mapName } from '../volume/layer.js';
import { layerFiles } from '../volume/newer-state.js';
import { STAGING_MARK, readStagingMark, removeStagingMark, writeStagingMark } from '../volume/staging-mark.js';
import { cloneManifest, layerRecord } from '../volume/tree.js';
import { Volume } from '../volume/volume.js';
import { copyLayer, damageIn } from './copy-layer.js';

/**
 * `copy`: a volume's chain (its live view, or one snapshot's) into another namespace, re-linking
 * the layers the destination already holds instead of moving them again.
 *
 * The destination is a namespace that either
 * - holds no volume (empty): the copy becomes a new volume there (a new uuid; the chain's sealed
 *   layers and their snapshots, and the live layer, or an empty live layer over snapshot NAME);
 * - holds a volume (same block size and size): the chain is received into it, as `zfs recv`
 *   receives an incremental stream: walking up from the base, each layer of the chain whose
 *   content ID, sealed state and parent match a sealed layer of the destination (and whose data
 *   reads back clean) is re-linked to it; the rest are copied; the chain's snapshots are added
 *   and the destination's live view becomes the copy's. The destination's own live layer must
 *   hold no changes (snapshot or revert them first); its other snapshots stay.
 *
 * Every block read from the source is checked against its stored XXH3-128 before it is written;
 * each copied layer's content ID must equal the source's. A re-link candidate is read in full
 * and checked the same way first: a candidate whose content ID matches but whose data is damaged
 * is not used (it is reported in `rejected`, and the layer is copied instead).
 *
 * Visibility and crashes: copied layers are built under the staging mark (staging-mark.ts) with
 * numbers the destination's manifest has not used, and one manifest commit makes all of it
 * visible (for a new volume: the manifest's creation). A failure or an abort before that commit
 * removes what this run made. After a crash, the next run finds the layers already copied (by
 * content ID, checked again) and copies only the rest; a writable open of the destination
 * instead removes them (the mark says they are leftovers).
 */
export interface CopyOptions {
  /** copy snapshot `snapshot`'s chain (default: the live view, which needs the source's writer lock) */
  snapshot?: string;
  signal?: AbortSignal;
  /**
   * Read back and check the data of each re-link candidate before using it (default true). With
   * false, a candidate is trusted on its content ID and sealed state: damage in it is then found
   * only when a read of the copy meets it (`checksum-mismatch`), never served. For measurements.
   */
  checkReused?: boolean;
  /**
   * Progress of each phase: `check` (reading back a re-link candidate at the destination, per
   * candidate) and `copy` (bytes moved, once the plan is known).
   */
  onProgress?: (done: number, total: number, phase: 'check' | 'copy') => void;
}

export interface CopiedLayer {
  /** the layer at the source */
  source: string;
  /** the layer at the destination */
  target: string;
  contentId: string;
  how: 'reused' | 'copied' | 'resumed';
  /** data bytes moved for it (0 when reused or resumed) */
  bytes: number;
}

export interface CopyReport {
  /** what the destination was: `new` (a volume was created), `existing` (received into it) */
  into: 'new' | 'existing';
  /** the chain, base first */
  layers: CopiedLayer[];
  reused: number;
  copied: number;
  resumed: number;
  /** data bytes read from the source and written to the destination */
  bytesMoved: number;
  /** data bytes of the whole chain: what a copy that re-linked nothing would move */
  bytesTotal: number;
  /** bytes read at the destination to check re-link candidates and resumed layers */
  bytesVerified: number;
  /** re-link candidates with the right content ID that were not used, and why */
  rejected: { layer: string; contentId: string; problem: string }[];
  /** the snapshots the copy carries at the destination */
  snapshots: string[];
  /** the destination's live layer */
  active: string;
  uuid: string;
}

interface Level {
  rec: LayerRecord;
  layer: Layer;
  contentId: string;
  /** destination layer id, once planned */
  target?: string;
  how?: CopiedLayer['how'];
  bytes: number;
}

/** Copy the chain of the volume in `src` (or of snapshot `options.snapshot`) into `dst`. */
export async function copyVolume(src: StoreNamespace, dst: StoreNamespace, options: CopyOptions = {}): Promise<CopyReport> {
  await loadKernels();
  if (src === dst) throw new StrataError('invalid-argument', 'The source and the destination are the same namespace; copy to another one.');
  if (dst.readOnly) throw new StrataError('read-only', `The destination ${dst.label ?? ''} is read-only.`.replace('  ', ' '));
  let srcLock: NamespaceLock | undefined;
  if (options.snapshot === undefined) {
    // The live view must not change under the copy: hold the source's writer lock.
    try {
      srcLock = await src.lock?.();
    } catch (e) {
      if (!isStrataError(e, 'locked')) throw e;
      throw new StrataError('locked', `The source ${src.label ?? 'volume'} is open for writing elsewhere, so its live view may change during the copy. Copy one of its snapshots (SRC@NAME), or stop the writer first.`, { cause: e });
    }
  }
  try {
    const vol = await Volume.open(src, { readOnly: true });
    try {
      return await copyOpen(vol, dst, options);
    } finally {
      await vol.close();
    }
  } finally {
    await srcLock?.release();
  }
}

async function copyOpen(vol: Volume, dst: StoreNamespace, options: CopyOptions): Promise<CopyReport> {
  const { signal } = options;
  if (vol.remote) throw new StrataError('unsupported', `${vol.label} is built on a remote image; its chain ends in that image, which a copy cannot carry. Stream it in first (\`stratadisk stream\`).`);
  const m = vol.manifest;
  const levels: Level[] = vol
    .layerChain(options.snapshot)
    .reverse()
    .map((id) => {
      const rec = layerRecord(m, id);
      const layer = vol.layer(id);
      return { rec, layer, contentId: rec.sealed && rec.contentId !== null ? rec.contentId : layer.contentId(), bytes: 0 };
    });
  const inChain = new Map(levels.map((l, i) => [l.rec.id, i]));
  const snaps = m.snapshots.filter((s) => inChain.has(s.layer));

  let dstLock: NamespaceLock | undefined;
  try {
    dstLock = await dst.lock?.();
  } catch (e) {
    if (!isStrataError(e, 'locked')) throw e;
    throw new StrataError('locked', `The destination ${dst.label ?? ''} is open for writing elsewhere; close it first (${e.message.replace(/\.$/, '')}).`.replace('  ', ' '), { cause: e });
  }
  try {
    const slots = await readManifestSlots(dst);
    const existing = slots.some((s) => s.state === 'valid') ? await Volume.open(dst, { readOnly: true }) : null;
    try {
      return await new CopyRun(vol, levels, snaps, dst, existing, signal, options.onProgress, options.checkReused ?? true).run();
    } finally {
      await existing?.close();
    }
  } finally {
    await dstLock?.release();
  }
}

class CopyRun {
  private readonly report: CopyReport;
  /** first layer number this copy may create */
  private from = 1;
  private next = 1;
  /** the destination's live layer, and whether the copy replaces it */
  private active = '';
  private dropActive: string | null = null;
  private newActive = false;
  /** the chain re-links a sealed layer to DST's live layer: the commit seals it */
  private sealActive = false;
  private committing = false;

  constructor(
    private readonly vol: Volume,
    private readonly levels: Level[],
    private readonly snaps: SnapshotRecord[],
    private readonly dst: StoreNamespace,
    private readonly existing: Volume | null,
    private readonly signal: AbortSignal | undefined,
    private readonly onProgress: ((done: number, total: number, phase: 'check' | 'copy') => void) | undefined,
    private readonly checkReused: boolean,
  ) {
    this.report = {
      into: existing ? 'existing' : 'new',
      layers: [],
      reused: 0,
      copied: 0,
      resumed: 0,
      bytesMoved: 0,
      bytesTotal: 0,
      bytesVerified: 0,
      rejected: [],
      snapshots: snaps.map((s) => s.name),
      active: '',
      uuid: existing?.manifest.uuid ?? globalThis.crypto.randomUUID(),
    };
  }

  private aborted(): void {
    if (this.signal?.aborted) throw new StrataError('aborted', 'Interrupted.');
  }

  async run(): Promise<CopyReport> {
    const dm = this.existing?.manifest;
    if (this.existing && dm) {
      this.checkExisting(dm);
      this.from = dm.nextLayer;
      await this.planReuse(dm);
    } else {
      await this.checkEmpty();
    }
    this.next = this.from;
    const top = this.levels[this.levels.length - 1]!;
    for (const lv of this.levels) if (lv.target === undefined) lv.target = layerId(this.next++);
    if (!top.rec.sealed) this.active = top.target!;
    else if (dm && top.how === 'reused' && top.target !== dm.active && layerRecord(dm, dm.active).parent === top.target) this.active = dm.active; // empty (checked)
    else {
      this.active = layerId(this.next++);
      this.newActive = true;
    }
    if (dm && this.active !== dm.active && !this.levels.some((l) => l.target === dm.active)) this.dropActive = dm.active;
    this.sealActive = dm !== undefined && this.levels.some((l) => l.rec.sealed && l.target === dm.active);
    this.report.active = this.active;
    this.report.bytesTotal = this.levels.reduce((n, l) => n + l.layer.dataBlocks * l.layer.blockSize, 0);

    const toCopy = this.levels.filter((l) => l.how === undefined);
    const work = toCopy.length > 0 || this.newActive || this.dropActive !== null || this.sealActive || this.missingSnapshots(dm).length > 0;
    if (work) await this.build(toCopy, dm);
    else if ((await readStagingMark(this.dst)) !== null) await this.removeLeftovers(dm); // a crash after the commit left them
    for (const lv of this.levels) {
      this.report.layers.push({ source: lv.rec.id, target: lv.target!, contentId: lv.contentId, how: lv.how!, bytes: lv.bytes });
      this.report[lv.how!]++;
    }
    return this.report;
  }

  /** The destination volume must fit the chain and have no changes of its own in its live layer. */
  private checkExisting(dm: Manifest): void {
    const where = this.existing!.label;
    const { blockSize, size } = this.vol;
    if (this.existing!.newerState.length > 0) throw new StrataError('corrupt', `${where} held newer state than its manifest records; nothing is copied into it. Run \`stratadisk check\` on it.`);
    if (this.existing!.remote) throw new StrataError('unsupported', `${where} is built on a remote image; copy into a new directory instead.`);
    if (dm.blockSize !== blockSize || dm.size !== size) {
      throw new StrataError('invalid-argument', `${where} has ${dm.size} bytes in ${dm.blockSize}-byte blocks, the source ${size} in ${blockSize}-byte blocks; a chain is received only into a volume of the same size and block size. Copy into a new directory instead.`);
    }
  }

  /** A new volume: the namespace holds nothing, or only what an interrupted copy left (under its mark). */
  private async checkEmpty(): Promise<void> {
    const names = await this.dst.list();
    const mark = await readStagingMark(this.dst);
    const layers = layerFiles(names);
    const ours = (n: string) => n === STAGING_MARK || (MANIFEST_SLOTS as readonly string[]).includes(n) || [...layers.keys()].some((id) => n.startsWith(`${id}.`));
    const foreign = names.filter((n) => !ours(n));
    const where = this.dst.label ?? 'The destination';
    if (foreign.length > 0) throw new StrataError('exists', `${where} is not empty and holds no volume (it holds ${foreign.slice(0, 3).join(', ')}); copy into a new or empty directory, or into a volume.`);
    // a torn mark (a crash while writing it) came before any layer: nothing else is there then
    if (mark === null && names.some((n) => n !== STAGING_MARK)) throw new StrataError('exists', `${where} holds the files of a volume whose creation never completed; remove them, or copy elsewhere.`);
  }

  /** Walk up from the base: re-link each layer to a matching, clean layer of the destination. */
  private async planReuse(dm: Manifest): Promise<void> {
    let below: string | null = null;
    for (const lv of this.levels) {
      // A sealed layer matches a sealed one, or DST's live layer (sealed by the commit) when its
      // content is exactly that: a source that took a snapshot since the last copy moves nothing.
      const live = dm.layers.find((c) => c.id === dm.active && c.parent === below && this.existing!.layer(c.id).contentId() === lv.contentId);
      const cands = lv.rec.sealed ? [...dm.layers.filter((c) => c.sealed && c.contentId === lv.contentId && c.parent === below), ...(live ? [live] : [])] : live ? [live] : [];
      let found: string | null = null;
      for (const c of cands) {
        this.aborted();
        const cand = this.existing!.layer(c.id);
        const size = cand.dataBlocks * cand.blockSize;
        let checked = 0;
        if (this.checkReused) this.onProgress?.(0, size, 'check');
        const problem = this.checkReused
          ? await damageIn(cand, `Layer ${c.id} of ${this.existing!.label}`, this.signal, (n) => {
              this.report.bytesVerified += n;
              checked += n;
              this.onProgress?.(checked, size, 'check');
            })
          : null;
        if (problem === null) {
          found = c.id;
          break;
        }
        this.report.rejected.push({ layer: c.id, contentId: lv.contentId, problem });
      }
      if (found === null) break;
      lv.target = found;
      lv.how = 'reused';
      below = found;
    }
    const live = this.existing!.layer(dm.active);
    const top = this.levels[this.levels.length - 1]!;
    // The live layer is kept only when the chain re-links to it.
    const keepsLive = this.levels.some((l) => l.how === 'reused' && l.target === dm.active);
    if (!keepsLive && live.dataBlocks + live.zeroBlocks > 0) {
      throw new StrataError('exists', `${this.existing!.label} has changes in its live view that no snapshot holds; the copy would replace its live view. Take a snapshot of it (or revert it) first, or copy into a new directory.`);
    }
    for (const s of this.snaps) {
      const have = dm.snapshots.find((x) => x.name === s.name);
      const want = this.levels[this.levelOf(s.layer)]!;
      if (have && !(want.how === 'reused' && have.layer === want.target)) {
        const damage = this.report.rejected.find((x) => x.layer === have.layer);
        const why = damage ? `on a layer with the right content ID whose data is damaged (${damage.problem})` : 'on other content';
        throw new StrataError('exists', `${this.existing!.label} already has a snapshot named "${s.name}" ${why}; delete it there first (\`stratadisk delete-snapshot\`), or copy into a new directory.`);
      }
    }
  }

  private levelOf(srcLayer: string): number {
    return this.levels.findIndex((l) => l.rec.id === srcLayer);
  }

  private missingSnapshots(dm: Manifest | undefined): SnapshotRecord[] {
    return this.snaps.filter((s) => !dm?.snapshots.some((x) => x.name === s.name));
  }

  /** Copy the layers, then commit the manifest that names them: one step visible. */
  private async build(toCopy: Level[], dm: Manifest | undefined): Promise<void> {
    const total = toCopy.reduce((n, l) => n + l.layer.dataBlocks * l.layer.blockSize, 0);
    let done = 0;
    this.onProgress?.(0, total, 'copy');
    try {
      await this.takeLeftovers(toCopy, dm);
      await writeStagingMark(this.dst, this.from);
      for (const lv of toCopy) {
        this.aborted();
        if (lv.how === 'resumed') continue;
        const copy = await copyLayer(lv.layer, `Layer ${lv.rec.id} of ${this.vol.label}`, this.dst, lv.target!, this.signal, (n) => {
          lv.bytes += n;
          done += n;
          this.report.bytesMoved += n;
          this.onProgress?.(done, total, 'copy');
        });
        await copy.close();
        lv.how = 'copied';
      }
      if (this.newActive) await (await Layer.create(this.dst, this.active, this.vol.blockSize)).close();
      await this.dst.sync();
      this.aborted();
      await this.commit(dm);
    } catch (e) {
      if (this.committing) {
        throw new StrataError('io', `Storing the manifest that makes the copy visible failed (${e instanceof Error ? e.message : String(e)}); the destination holds either all of the copy or none of it: run the copy again to finish it.`, { cause: e });
      }
      await this.removeLeftovers(dm).catch(() => {});
      throw e;
    }
    // Committed: what follows only tidies up (a writable open would do the same).
    if (this.dropActive !== null) await this.deleteLayerFiles(this.dropActive, layerRecord(dm!, this.dropActive).mapGen ?? 0).catch(() => {});
    await removeStagingMark(this.dst).catch(() => {});
  }

  /**
   * What an interrupted copy left: a layer already copied completely (its content ID equals the
   * source layer's, and its data reads back clean) is kept; anything else is removed.
   */
  private async takeLeftovers(toCopy: Level[], dm: Manifest | undefined): Promise<void> {
    const known = new Set(dm?.layers.map((l) => l.id) ?? []);
    const byTarget = new Map(toCopy.map((l) => [l.target!, l]));
    for (const [id, files] of layerFiles(await this.dst.list())) {
      if (known.has(id)) continue;
      const lv = byTarget.get(id);
      if (lv && files.data && files.maps.length === 1 && files.maps[0] === 0 && (await this.complete(lv))) {
        lv.how = 'resumed';
        continue;
      }
      for (const g of files.maps) await this.dst.delete(mapName(id, g));
      if (files.data) await this.dst.delete(dataName(id));
    }
    if (!dm) {
      // a manifest whose creation a crash cut short
      for (const n of MANIFEST_SLOTS) if (await this.dst.exists(n)) await this.dst.delete(n);
    }
    await this.dst.sync();
  }

  private async complete(lv: Level): Promise<boolean> {
    let layer: Layer;
    try {
      layer = await Layer.open(this.dst, lv.target!, this.vol.blockSize, true);
    } catch {
      return false;
    }
    try {
      if (layer.contentId() !== lv.contentId) return false;
      return (await damageIn(layer, `Layer ${lv.target}`, this.signal, (n) => (this.report.bytesVerified += n))) === null;
    } finally {
      await layer.close();
    }
  }

  private async commit(dm: Manifest | undefined): Promise<void> {
    const now = new Date().toISOString();
    const recs: LayerRecord[] = [];
    this.levels.forEach((lv, i) => {
      if (lv.how === 'reused') return;
      const below = i > 0 ? this.levels[i - 1]! : null;
      recs.push({
        id: lv.target!,
        parent: below ? below.target! : null,
        sealed: lv.rec.sealed,
        contentId: lv.rec.sealed ? lv.contentId : null,
        parentContentId: below ? below.contentId : null,
        created: lv.rec.created,
      });
    });
    const top = this.levels[this.levels.length - 1]!;
    if (this.newActive) recs.push({ id: this.active, parent: top.target!, sealed: false, contentId: null, parentContentId: top.contentId, created: now });
    const snaps = this.missingSnapshots(dm).map((s) => ({ name: s.name, layer: this.levels[this.levelOf(s.layer)]!.target!, created: s.created }));
    if (dm) {
      const m = cloneManifest(dm);
      if (this.dropActive !== null) m.layers = m.layers.filter((l) => l.id !== this.dropActive);
      for (const lv of this.levels) {
        if (lv.how !== 'reused' || lv.target !== dm.active || !lv.rec.sealed) continue;
        const r = layerRecord(m, lv.target);
        r.sealed = true;
        r.contentId = lv.contentId;
      }
      m.layers.push(...recs);
      m.snapshots.push(...snaps);
      m.active = this.active;
      m.nextLayer = Math.max(m.nextLayer, this.next);
      const ms = await ManifestStore.open(this.dst);
      if (ms.generation !== this.existing!.info().generation) throw new StrataError('locked', `${this.existing!.label} changed during the copy; run the copy again.`);
      this.committing = true;
      await ms.commit(m);
    } else {
      const m: Manifest = {
        format: MANIFEST_FORMAT,
        version: MANIFEST_VERSION,
        uuid: this.report.uuid,
        size: this.vol.size,
        blockSize: this.vol.blockSize,
        layers: recs,
        active: this.active,
        snapshots: snaps,
        nextLayer: this.next,
      };
      this.committing = true;
      await ManifestStore.create(this.dst, m);
    }
    this.committing = false;
  }

  /** After a failure before the commit: remove the layers this copy made, and its mark. */
  private async removeLeftovers(dm: Manifest | undefined): Promise<void> {
    const known = new Set(dm?.layers.map((l) => l.id) ?? []);
    for (const [id, files] of layerFiles(await this.dst.list())) {
      if (known.has(id) || Number(id.slice(1)) < this.from) continue;
      for (const g of files.maps) await this.dst.delete(mapName(id, g));
      if (files.data) await this.dst.delete(dataName(id));
    }
    if (!dm) for (const n of MANIFEST_SLOTS) if (await this.dst.exists(n)) await this.dst.delete(n);
    await removeStagingMark(this.dst);
    await this.dst.sync();
  }

  private async deleteLayerFiles(id: string, gen: number): Promise<void> {
    for (const f of [dataName(id), mapName(id, gen)]) if (await this.dst.exists(f)) await this.dst.delete(f);
    await this.dst.sync();
  }
}
