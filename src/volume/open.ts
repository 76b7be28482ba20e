import { StrataError } from '../errors.js';
import {
  ManifestStore,
  checkBlockSize,
  checkVolumeSize,
  layerId,
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  MANIFEST_SLOTS,
  readManifestSlots,
  type Manifest,
} from '../format/manifest.js';
import { corrupt } from '../format/record.js';
import type { StoreNamespace } from '../store/store.js';
import { loadKernels } from '../wasm/index.js';
import { Layer } from './layer.js';
import { collectGarbage } from './merge.js';
import { layerRecord } from './tree.js';
import { scanForNewerState, slotEvidence, type NewerState } from './newer-state.js';
import { RemoteBase, type RemoteOptions } from './remote-base.js';
import { VERIFY_MODES, type VerifyMode } from './verify.js';
import { removeStagingMark } from './staging-mark.js';
import { checkLinks } from './links.js';
import { VolumeCore } from './core.js';

/** Creating a volume's files, and opening them into a {@link VolumeCore} (Volume.create and Volume.open). */

export const DEFAULT_BLOCK_SIZE = 64 * 1024;

export interface CreateVolumeOptions extends OpenVolumeOptions {
  size: number;
  blockSize?: number;
}

export interface OpenVolumeOptions {
  readOnly?: boolean;
  /** Rewrite a layer's map log at flush once it exceeds this size and 4x its live entries (default 1 MiB). */
  compactMapBytes?: number;
  /** How to reach the image of a copy-on-read volume (timeouts, retries, read-ahead, fetch). */
  remote?: RemoteOptions;
  /**
   * Writable opens normally finish interrupted snapshot deletions (layer merges) before
   * returning. With this set they are left for a consolidation job to finish online
   * (`resumeJobs` in src/jobs); the volume reads the same either way.
   */
  deferMerges?: boolean;
  /**
   * How reads are checked against the stored block checksums (src/volume/verify.ts): 'on'
   * (default), 'always' (partial reads re-check their whole block every time) or 'off' (for
   * benchmarks only: damaged data would be returned).
   */
  verify?: VerifyMode;
  /**
   * The requirements of the manifest (`requires`, e.g. `journal`) this opener attaches before it
   * writes. A writable open of a volume with a requirement not listed here is refused
   * (`unsupported`): its writes would pass the write log by. Read-only opens need none.
   */
  handles?: readonly string[];
}

/** What a requirement means, for the message that refuses a writable open without it. */
const REQUIREMENT_HINTS: Record<string, string> = {
  journal: 'it keeps a write log (journal) that must see every write: open it with openJournaled() (the stratadisk commands do), or disable the log first (`stratadisk journal disable DIR`)',
};

function checkRequirements(ms: ManifestStore, handles: readonly string[] | undefined, label: string): void {
  for (const r of ms.manifest.requires ?? []) {
    if (handles?.includes(r.name)) continue;
    const hint = REQUIREMENT_HINTS[r.name] ?? `it requires "${r.name}", which this opener does not attach; use a stratadisk that knows it`;
    throw new StrataError('unsupported', `${label} cannot be opened for writing here: ${hint}. It can be opened read-only.`);
  }
}

/** Create the files of a new, empty volume in `ns` (which must not already hold one); open it after. */
export async function createVolumeFiles(ns: StoreNamespace, options: CreateVolumeOptions): Promise<void> {
  await loadKernels();
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  checkBlockSize(blockSize);
  checkVolumeSize(options.size, blockSize);
  if (ns.readOnly) throw new StrataError('read-only', 'Cannot create a volume in a read-only namespace.');
  for (const name of MANIFEST_SLOTS) {
    if (await ns.exists(name)) throw new StrataError('exists', 'A volume already exists here; open it, or choose an empty directory.');
  }
  const base = layerId(1);
  const layer = await Layer.create(ns, base, blockSize);
  await layer.close();
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    uuid: randomUuid(),
    size: options.size,
    blockSize,
    layers: [{ id: base, parent: null, sealed: false, contentId: null, created: new Date().toISOString() }],
    active: base,
    snapshots: [],
    nextLayer: 2,
  };
  await ManifestStore.create(ns, manifest);
}

/**
 * Open the volume in `ns`. Writable opens finish any interrupted snapshot deletion and drop
 * files a crash left behind. If the volume held newer state than its surviving manifest
 * records (a lost manifest slot: see newer-state.ts), a writable open fails with `corrupt`
 * and changes nothing; a read-only open works and lists the evidence in `newerState`.
 */
export async function openVolumeCore(ns: StoreNamespace, options: OpenVolumeOptions = {}): Promise<VolumeCore> {
  await loadKernels();
  const readOnly = options.readOnly ?? ns.readOnly;
  const lock = readOnly ? undefined : await ns.lock?.();
  let ms: ManifestStore;
  try {
    ms = await ManifestStore.open(ns);
  } catch (e) {
    await lock?.release();
    throw e;
  }
  const v = new VolumeCore(ns, ms, readOnly);
  v.writerLock = lock;
  if (!readOnly) {
    try {
      checkRequirements(ms, options.handles, v.label);
    } catch (e) {
      await lock?.release();
      throw e;
    }
  }
  if (options.compactMapBytes !== undefined) v.compactMapBytes = options.compactMapBytes;
  if (options.verify !== undefined) {
    if (!VERIFY_MODES.includes(options.verify)) {
      await lock?.release();
      throw new StrataError('invalid-argument', `verify must be one of ${VERIFY_MODES.join(', ')}, not "${String(options.verify)}".`);
    }
    v.verify = options.verify;
  }
  try {
    for (const l of ms.manifest.layers) {
      // Sealed layers are never written by I/O; only merges (writable opens) touch them.
      const layer = await openLayer(ns, l.id, ms, readOnly);
      v.layers.set(l.id, layer);
      // A sealed layer never changes except by a merge that records its new ID, so a
      // mismatch means its map lost or gained records.
      if (l.sealed && l.contentId !== null && l.contentId !== layer.contentId()) {
        throw withSlotEvidence(corrupt(`Layer ${l.id}`, 'its content no longer matches the content ID recorded when it was sealed'), ms);
      }
    }
    // Each sealed layer matches its own recorded ID (above); each child matches its parent's.
    try {
      checkLinks(ms.manifest, v.label);
    } catch (e) {
      throw withSlotEvidence(e, ms);
    }
    if (ms.manifest.remote) v.remoteBase = new RemoteBase(v, options.remote);
    v.rebuildChain();
    const scan = await scanForNewerState(ns, ms.manifest, ms.generation, ms.slots, (id) => v.layers.get(id));
    // A read-only open takes no lock: a writer may have committed a newer generation (and
    // written its new layer) since we read the manifest. That is no loss.
    if (readOnly && scan.evidence.length > 0 && (await newerCommitted(ns, ms.generation))) scan.evidence = [];
    v.newerState = scan.evidence;
    if (!readOnly) {
      if (scan.evidence.length > 0) throw newerStateError(ms.generation, scan.evidence);
      await v.removeStale(scan.stale);
      // a staged change that never committed: its layers are gone now, and so is its mark
      await removeStagingMark(ns);
      if (!options.deferMerges) {
        await collectGarbage(v);
        v.rebuildChain();
      }
    }
  } catch (e) {
    await v.remoteBase?.close();
    await v.closeLayers();
    await lock?.release();
    throw e;
  }
  return v;
}

/** Open a layer the manifest names; a missing or damaged one also mentions a lost manifest slot. */
async function openLayer(ns: StoreNamespace, id: string, ms: ManifestStore, readOnly: boolean): Promise<Layer> {
  const gen = layerRecord(ms.manifest, id).mapGen ?? 0;
  try {
    return await Layer.open(ns, id, ms.manifest.blockSize, readOnly, gen);
  } catch (e) {
    throw withSlotEvidence(e, ms);
  }
}

/** A `corrupt` error, prefixed with what the manifest slots show (a lost newer generation explains most damage). */
function withSlotEvidence(e: unknown, ms: ManifestStore): unknown {
  const slots = slotEvidence(ms.generation, ms.slots);
  if (slots.length === 0 || !(e instanceof StrataError) || e.code !== 'corrupt') return e;
  return new StrataError('corrupt', `${slots.map((x) => x.message).join(' ')} ${e.message}`, { cause: e });
}

/** Has a manifest generation newer than `generation` been committed (by a writer running now)? */
async function newerCommitted(ns: StoreNamespace, generation: number): Promise<boolean> {
  return (await readManifestSlots(ns)).some((s) => s.state === 'valid' && s.generation! > generation);
}

/** Refusal of a writable open of a volume that lost newer state. */
function newerStateError(generation: number, evidence: readonly NewerState[]): StrataError {
  return new StrataError(
    'corrupt',
    `The volume held newer state than its manifest records (generation ${generation}); writing to it would lose that state for good. ` +
      evidence.map((e) => e.message).join(' ') +
      ' Nothing was changed. Run `stratadisk salvage DIR OUT` to export every snapshot, the live view and the newer layers; read-only opens (export, check) still work.',
  );
}

function randomUuid(): string {
  return globalThis.crypto.randomUUID();
}
