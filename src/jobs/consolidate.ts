import { StrataError } from '../errors.js';
import type { Manifest } from '../format/manifest.js';
import type { VolumeJobAccess } from '../volume/job-access.js';
import { SLOT_ABSENT, type Layer } from '../volume/layer.js';
import { sameEntry } from '../volume/merge.js';
import { children, cloneManifest, collapsedManifest, isReferenced, layerRecord } from '../volume/tree.js';
import type { Volume } from '../volume/volume.js';
import { LayerMirror } from '../volume/write-mirror.js';
import { BaseJob, type JobOptions } from './job.js';
import { JobJournal, type JobRecord } from './job-journal.js';
import { copyPass, layerSource } from './copy-pass.js';

/**
 * Online consolidation: collapse a layer nobody needs any more into its only child while the
 * volume is read and written.
 *
 *  - down ("commit"): the child's blocks are copied into the lower layer, which then takes the
 *    child's place. When the child is the active layer, a write mirror sends every new write to
 *    the lower layer too, and the copy pass skips every block the mirror wrote after it started.
 *  - up ("merge"): the lower layer's blocks that the child lacks are copied up into the child,
 *    checked under the write lock so a block the writer wrote meanwhile is never overwritten.
 *
 * Crash safety: the first manifest commit removes the snapshot name(s) and clears the recorded
 * content ID of the layer to be written; from then on the chain reads the same whatever the
 * pass has done (the lower layer only gains blocks the child also holds, flushed after the
 * child). The last commit switches the volume to the collapsed chain in one manifest write. A
 * crash in between leaves a pending merge that the next writable open finishes (skipping the
 * blocks already copied), or that `resumeJobs` runs online again.
 */
export type ConsolidateRequest =
  /** delete snapshot `name` and collapse its layer */
  | { op: 'delete-snapshot'; name: string }
  /** merge the active layer into its parent; `dropSnapshot` allows deleting the parent's snapshot name */
  | { op: 'commit'; dropSnapshot?: boolean }
  /** finish an interrupted consolidation of layer `lower` */
  | { op: 'resume'; lower: string };

export type Direction = 'down' | 'up';

export interface ConsolidationPlan {
  /** snapshot names the first commit removes */
  removeNames: string[];
  /** 'merge' lower into upper; 'drop' lower (no children); 'keep' it (still shared: only names go) */
  action: 'merge' | 'drop' | 'keep';
  lower: string;
  upper: string | null;
  direction: Direction;
  /** does the pass copy into a layer that is being written (needs the mirror)? */
  mirrored: boolean;
}

export interface ConsolidateOptions extends JobOptions {
  /** 'auto' (default): down for commit; otherwise the direction that copies fewer blocks */
  direction?: 'auto' | Direction;
  /**
   * Also keep a record in the job journal (who started what, for `stratadisk jobs`). Default
   * false: the manifest itself records an interrupted consolidation (a sealed layer without a
   * name and with one child), which every writable open or `resumeJobs` finishes, so the journal
   * would only add detail at the cost of three more syncs.
   */
  journal?: boolean;
  /** bytes copied between flushes of the target (default 1 GiB; the switch-over flushes anyway) */
  flushEvery?: number;
  /** bytes copied per batch (default 8 MiB) */
  batchBytes?: number;
}

const BATCH_BYTES = 8 << 20;

/** Work out what consolidating `req` does on manifest `m`, or throw a StrataError saying why it is refused. */
export function planConsolidation(m: Manifest, req: ConsolidateRequest, entries: (id: string) => number, direction: 'auto' | Direction = 'auto'): ConsolidationPlan {
  let lower: string;
  let removeNames: string[] = [];
  if (req.op === 'delete-snapshot') {
    const s = m.snapshots.find((x) => x.name === req.name);
    if (!s) throw new StrataError('not-found', `No snapshot named "${req.name}". List them with \`stratadisk snapshots DIR\`.`);
    lower = s.layer;
    removeNames = [req.name];
  } else if (req.op === 'commit') {
    const parent = layerRecord(m, m.active).parent;
    if (parent === null) throw new StrataError('invalid-argument', 'The active layer has no parent: there is nothing to commit into.');
    lower = parent;
    const names = m.snapshots.filter((x) => x.layer === parent).map((x) => x.name);
    if (names.length > 0 && !req.dropSnapshot) {
      throw new StrataError(
        'invalid-argument',
        `The active layer's parent is snapshot ${names.map((n) => `"${n}"`).join(', ')}; committing into it changes what that snapshot reads. ` +
          'Pass --drop-snapshot (dropSnapshot: true) to commit and delete it, or keep it and use `stratadisk delete-snapshot DIR NAME` on snapshots you no longer need.',
      );
    }
    removeNames = names;
    const kids = children(m, parent);
    if (kids.length > 1) {
      throw new StrataError(
        'invalid-argument',
        `Cannot commit: the parent layer ${parent} is shared by ${kids.length} branches (other snapshots read it). Committing down would change them and merging up would leave it in place.`,
      );
    }
  } else {
    lower = req.lower;
    if (!m.layers.some((l) => l.id === lower)) throw new StrataError('not-found', `Layer ${lower} is no longer part of the volume; nothing to resume.`);
  }
  const next = cloneManifest(m);
  next.snapshots = next.snapshots.filter((s) => !removeNames.includes(s.name));
  const rec = layerRecord(next, lower);
  const kids = children(next, lower);
  const base = { removeNames, lower, upper: null, direction: 'down' as Direction, mirrored: false };
  if (!rec.sealed || isReferenced(next, lower)) return { ...base, action: 'keep' };
  if (kids.length === 0) return { ...base, action: 'drop' };
  if (kids.length > 1) return { ...base, action: 'keep' };
  const upper = kids[0]!.id;
  let dir: Direction;
  if (direction !== 'auto') dir = direction;
  else if (req.op === 'commit') dir = 'down';
  else dir = entries(upper) <= entries(lower) ? 'down' : 'up';
  return { removeNames, action: 'merge', lower, upper, direction: dir, mirrored: dir === 'down' && next.active === upper };
}

/**
 * Start consolidating `req` on an open, writable volume. Refusals (unknown snapshot, unsafe
 * commit, another job running) throw here; the returned job is already running.
 */
export function consolidate(volume: Volume, req: ConsolidateRequest, options: ConsolidateOptions = {}): ConsolidateJob {
  const access = volume.beginJob('consolidate');
  let plan: ConsolidationPlan;
  try {
    const entries = (id: string) => {
      const l = access.layer(id);
      return l.dataBlocks + l.zeroBlocks;
    };
    plan = planConsolidation(access.manifest(), req, entries, options.direction);
  } catch (e) {
    access.release();
    throw e;
  }
  return new ConsolidateJob(access, req, plan, options).start();
}

export class ConsolidateJob extends BaseJob {
  /**
   * Settles true once the volume has durably switched to the collapsed chain (the commit point;
   * what follows is deleting the merged-away layer's files), false if the job ends without it
   * (failed, cancelled, or a plan that merges nothing).
   */
  readonly switched: Promise<boolean>;
  private markSwitched!: (yes: boolean) => void;
  private readonly flushEvery: number;
  private readonly batchBytes: number;
  private readonly useJournal: boolean;

  constructor(
    private readonly access: VolumeJobAccess,
    readonly request: ConsolidateRequest,
    readonly plan: ConsolidationPlan,
    options: ConsolidateOptions,
  ) {
    super('consolidate', options);
    this.yieldTo(() => access.foregroundOps());
    this.switched = new Promise<boolean>((r) => (this.markSwitched = r));
    this.flushEvery = options.flushEvery ?? 1 << 30;
    this.batchBytes = options.batchBytes ?? BATCH_BYTES;
    this.useJournal = options.journal ?? false;
  }

  protected async run(): Promise<void> {
    const a = this.access;
    let journal: JobJournal | null = null;
    try {
      await this.checkpoint();
      const plan = this.plan;
      let mirror: LayerMirror | null = null;
      let todo: number[] = [];
      let src: Layer | null = null;
      let dst: Layer | null = null;
      await a.exclusive(async () => {
        await a.flushActive();
        if (this.useJournal) {
          journal = await JobJournal.open(a.ns);
          await journal.put(this.record());
        }
        const m1 = cloneManifest(a.manifest());
        m1.snapshots = m1.snapshots.filter((s) => !plan.removeNames.includes(s.name));
        if (plan.action === 'merge') {
          const target = layerRecord(m1, plan.direction === 'down' ? plan.lower : plan.upper!);
          if (target.sealed) target.contentId = null;
        }
        await a.commit(m1);
        if (plan.action !== 'merge') return;
        const lower = a.layer(plan.lower);
        const upper = a.layer(plan.upper!);
        [src, dst] = plan.direction === 'down' ? [upper, lower] : [lower, upper];
        if (plan.mirrored) {
          mirror = new LayerMirror(lower);
          a.setMirror(mirror);
        }
        // Blocks already in place (from an interrupted run) are skipped.
        const s = src;
        const d = dst;
        for (const [block] of s.entries()) {
          if (plan.direction === 'down' ? !sameEntry(s, d, block) : d.slot(block) === SLOT_ABSENT) todo.push(block);
        }
      });
      if (plan.action === 'drop') {
        await a.exclusive(async () => {
          const m2 = cloneManifest(a.manifest());
          m2.layers = m2.layers.filter((l) => l.id !== plan.lower);
          await a.commit(m2);
          await a.dropLayerFiles(plan.lower);
        });
      }
      if (plan.action === 'merge') {
        todo.sort((x, y) => x - y);
        await this.pass(src!, dst!, todo, mirror);
        todo = [];
        await this.switchOver(dst!, mirror);
      }
      if (journal) await a.exclusive(() => journal!.remove(this.id));
    } finally {
      this.markSwitched(false); // no-op once it switched
      a.release();
    }
  }

  private record(): JobRecord {
    const r = this.request;
    const params: JobRecord['params'] = { op: r.op, lower: this.plan.lower, upper: this.plan.upper, direction: this.plan.direction };
    if (r.op === 'delete-snapshot') params.name = r.name;
    const proc = (globalThis as { process?: { pid?: number } }).process;
    return { id: this.id, kind: this.kind, params, started: new Date().toISOString(), pid: proc?.pid ?? null, host: null };
  }

  /** Copy `todo` blocks of src into dst in batches, never over a block written since the pass began. */
  private async pass(src: Layer, dst: Layer, todo: number[], mirror: LayerMirror | null): Promise<void> {
    const a = this.access;
    this.setTotal(todo.length * a.blockSize);
    const down = this.plan.direction === 'down';
    const activeIsDst = a.manifest().active === dst.id;
    let sinceFlush = 0;
    await copyPass(layerSource(src), dst, todo, {
      batchBytes: this.batchBytes,
      // down: the lower layer is unnamed with this one child, which shadows every block copied
      overwrite: down,
      exclusive: (fn) => a.exclusive(fn),
      // down: the mirror wrote it; up: the writer gave the child its own copy
      stale: (b) => (down ? mirror !== null && mirror.written.has(b) : dst.slot(b) !== SLOT_ABSENT),
      afterBatch: async (bytes) => {
        sinceFlush += bytes;
        if (sinceFlush < this.flushEvery) return;
        sinceFlush = 0;
        await this.flushPair(dst, activeIsDst);
      },
      step: async (bytes) => {
        await this.step(bytes);
        if (mirror?.error) throw mirrorFailed(mirror.error);
      },
    });
  }

  /**
   * Make the target's copied blocks durable. When the pass writes below the active layer, the
   * active layer is flushed first: the target must never hold a mirrored write that the layer
   * above it lost in a crash.
   */
  private async flushPair(dst: Layer, activeIsDst: boolean): Promise<void> {
    await this.access.flushActive();
    if (!activeIsDst) await dst.flush();
  }

  /** One atomic manifest commit: the volume switches to the collapsed chain; the merged-away layer is dropped. */
  private async switchOver(dst: Layer, mirror: LayerMirror | null): Promise<void> {
    const a = this.access;
    const plan = this.plan;
    await this.checkpoint();
    await a.exclusive(async () => {
      if (mirror?.error) throw mirrorFailed(mirror.error);
      await this.flushPair(dst, a.manifest().active === dst.id);
      const xId = plan.lower;
      const cId = plan.upper!;
      a.setMirror(null);
      await a.commit(collapsedManifest(a.manifest(), plan.direction, xId, cId, dst.contentId()));
      this.markSwitched(true);
      await a.dropLayerFiles(plan.direction === 'up' ? xId : cId);
    });
  }
}

function mirrorFailed(e: unknown): StrataError {
  if (e instanceof StrataError) return e;
  return new StrataError('io', `The consolidation target could not be written: ${(e as Error)?.message ?? e}`, { cause: e });
}
