import { StrataError } from '../errors.js';
import type { StoreNamespace } from '../store/store.js';
import { FORMATS, KIND_MANIFEST, MAGIC_MANIFEST, MANIFEST_FORMAT, newerVersion } from './magic.js';
import { corrupt } from './record.js';
import { RecordSlots, newerUnsupported, newestValid } from './record-slots.js';

/**
 * The volume manifest: which layers exist, how they stack, which one is active, and the named
 * snapshots. It lives in two slots (`manifest.0`, `manifest.1`); each commit writes the next
 * generation into the slot not holding the current one and flushes it, so a torn commit leaves
 * the previous generation intact and opening picks the newest valid slot. No rename or backend
 * transaction is needed, so the same scheme works on raw devices, OPFS and IndexedDB.
 */
export { MANIFEST_FORMAT };
export const MANIFEST_VERSION = 1;
/**
 * Version of the manifest JSON of a volume with a remote base: a stratadisk that does not know
 * remote bases refuses it (`unsupported`) instead of reading the image's blocks as zeros.
 */
export const MANIFEST_VERSION_REMOTE = 2;
/**
 * Version of the manifest JSON of a volume with requirements (`requires`: e.g. a write log that
 * must see every write). A stratadisk that does not know them refuses the volume (`unsupported`)
 * instead of writing past them. A version-3 manifest may also have a remote base.
 */
export const MANIFEST_VERSION_REQUIRES = 3;
/**
 * Version of the manifest *record* (the checksummed envelope, src/format/record.ts). Version 2
 * says "written by a stratadisk that keeps layer links" (`parentContentId`, src/volume/links.ts):
 * every commit records them and every merge updates them. A stratadisk that reads only version
 * 1 refuses a version-2 manifest (`unsupported`), so it can never merge layers without updating
 * their links, which would make a newer stratadisk refuse the chain. Version-1 records (volumes
 * written before links) are read as before; their next commit writes version 2.
 */
export const MANIFEST_RECORD_VERSION = FORMATS.manifest.writes;
export const MANIFEST_SLOTS = ['manifest.0', 'manifest.1'] as const;
/** Manifests are small (a few hundred bytes per layer); anything larger is not ours. */
export const MAX_MANIFEST_BYTES = 16 << 20;

export interface LayerRecord {
  id: string;
  parent: string | null;
  sealed: boolean;
  /** content ID of a sealed layer (null while active) */
  contentId: string | null;
  /**
   * The content ID the parent had when this layer was stacked on it (or re-linked to it by a
   * merge or a copy): opening the volume refuses the chain when the parent's recorded ID differs.
   * Absent in manifests written before it existed, and null over an unsealed parent: no check.
   */
  parentContentId?: string | null;
  created: string;
  /** generation of the layer's map log (absent = 0); bumped by each compaction */
  mapGen?: number;
}

export interface SnapshotRecord {
  name: string;
  layer: string;
  created: string;
}

/**
 * The remote image a copy-on-read volume is built on (src/volume/remote-base.ts): where it is,
 * the version it is pinned to, and the layer caching the blocks fetched from it (the root of the
 * layer tree; layers above it hold the blocks the user changed).
 */
export interface RemoteRecord {
  url: string;
  size: number;
  etag?: string;
  lastModified?: string;
  /** id of the cache layer (parent null): blocks fetched clean from the image */
  cache: string;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  uuid: string;
  size: number;
  blockSize: number;
  layers: LayerRecord[];
  active: string;
  snapshots: SnapshotRecord[];
  nextLayer: number;
  /** present when the volume's base is a remote image (then `version` is MANIFEST_VERSION_REMOTE, or 3) */
  remote?: RemoteRecord;
  /**
   * What a writer must do besides writing the volume (then `version` is MANIFEST_VERSION_REQUIRES):
   * each names a capability that must be attached before any write, and where its data lives.
   * A writable open that does not handle one of them is refused (src/volume/open.ts).
   */
  requires?: Requirement[];
}

/** A capability a writer must attach (e.g. `journal`: every write goes to the write log too). */
export interface Requirement {
  name: string;
  /** where its data lives, as the capability understands it (empty: in the volume's own namespace) */
  where: string;
  /** snapshots it reads through (a write log's base): no commit may drop them while it is recorded */
  keeps?: string[];
  /** its settings, opaque to the volume (a write log's quota policy): short names, strings or numbers */
  settings?: Record<string, string | number>;
}

export const REQUIREMENT_NAME = /^[a-z][a-z0-9-]{0,31}$/;
const MAX_REQUIREMENTS = 8;

/** The JSON version a manifest must carry for what it holds. */
export function manifestVersion(m: Pick<Manifest, 'remote' | 'requires'>): number {
  if (m.requires !== undefined && m.requires.length > 0) return MANIFEST_VERSION_REQUIRES;
  return m.remote !== undefined ? MANIFEST_VERSION_REMOTE : MANIFEST_VERSION;
}

export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 1 << 20;
/** Block indices are u32 in the bitmap kernels. */
export const MAX_BLOCKS = 2 ** 32;
export const LAYER_ID = /^L[0-9]{6,12}$/;
/** A layer content ID as recorded (src/volume/content-id.ts): 32 lowercase hex digits. */
export const CONTENT_ID = /^[0-9a-f]{32}$/;
export const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$/;

export function layerId(n: number): string {
  return `L${String(n).padStart(6, '0')}`;
}

export function checkBlockSize(blockSize: number): void {
  if (!Number.isInteger(blockSize) || blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE || (blockSize & (blockSize - 1)) !== 0) {
    throw new StrataError('invalid-argument', `Block size ${blockSize} is not allowed: use a power of two from 4K to 1M (default 64K).`);
  }
}

export function checkVolumeSize(size: number, blockSize: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new StrataError('invalid-argument', `Volume size ${size} is not a whole number of bytes.`);
  if (Math.ceil(size / blockSize) > MAX_BLOCKS) {
    throw new StrataError('invalid-argument', `Volume size ${size} needs more than 2^32 blocks of ${blockSize} bytes; use a larger block size.`);
  }
}

/** Throws `corrupt` unless `m` is a well-formed manifest (every reference resolves, no cycles). */
export function validateManifest(m: unknown, what = 'The volume manifest'): asserts m is Manifest {
  const bad = (d: string): never => {
    throw corrupt(what, d);
  };
  if (typeof m !== 'object' || m === null) bad('not an object');
  const x = m as Record<string, unknown>;
  if (x.format !== MANIFEST_FORMAT) bad('wrong format tag');
  if (x.version !== MANIFEST_VERSION && x.version !== MANIFEST_VERSION_REMOTE && x.version !== MANIFEST_VERSION_REQUIRES) throw newerVersion('manifestJson', what, x.version);
  if (typeof x.uuid !== 'string' || x.uuid.length > 64) bad('bad uuid');
  if (typeof x.blockSize !== 'number' || typeof x.size !== 'number') bad('bad size');
  try {
    checkBlockSize(x.blockSize as number);
    checkVolumeSize(x.size as number, x.blockSize as number);
  } catch {
    bad('size or block size out of range');
  }
  if (!Array.isArray(x.layers) || !Array.isArray(x.snapshots)) bad('missing lists');
  if (typeof x.nextLayer !== 'number' || !Number.isSafeInteger(x.nextLayer)) bad('bad layer counter');
  const layers = new Map<string, LayerRecord>();
  for (const l of x.layers as unknown[]) {
    const r = l as LayerRecord;
    if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !LAYER_ID.test(r.id) || layers.has(r.id)) bad('bad layer entry');
    if (!(r.parent === null || (typeof r.parent === 'string' && LAYER_ID.test(r.parent)))) bad(`bad parent of ${r.id}`);
    if (typeof r.sealed !== 'boolean' || !(r.contentId === null || typeof r.contentId === 'string')) bad(`bad flags of ${r.id}`);
    if (Number(r.id.slice(1)) >= (x.nextLayer as number)) bad(`layer ${r.id} is newer than the layer counter`);
    if (!(r.parentContentId === undefined || r.parentContentId === null || (typeof r.parentContentId === 'string' && CONTENT_ID.test(r.parentContentId)))) bad(`bad parent content ID of ${r.id}`);
    if (r.parentContentId != null && r.parent === null) bad(`layer ${r.id} has a parent content ID but no parent`);
    if (r.mapGen !== undefined && !(Number.isInteger(r.mapGen) && r.mapGen >= 0 && r.mapGen < 1e9)) bad(`bad map generation of ${r.id}`);
    layers.set(r.id, r);
  }
  for (const r of layers.values()) {
    if (r.parent !== null && !layers.has(r.parent)) bad(`layer ${r.id} has a missing parent ${r.parent}`);
    // Walk up; a chain longer than the number of layers has a cycle.
    let p: string | null = r.parent;
    for (let steps = 0; p !== null; steps++) {
      if (steps > layers.size) bad('the layer tree has a cycle');
      p = layers.get(p)!.parent;
    }
  }
  if (x.requires !== undefined) {
    const req = x.requires as unknown;
    if (!Array.isArray(req) || req.length === 0 || req.length > MAX_REQUIREMENTS) bad('bad requirement list');
    const seen = new Set<string>();
    for (const r of req as Requirement[]) {
      if (typeof r !== 'object' || r === null || typeof r.name !== 'string' || !REQUIREMENT_NAME.test(r.name) || seen.has(r.name)) bad('bad requirement');
      if (typeof r.where !== 'string' || r.where.length > 4096) bad(`bad place of requirement ${r.name}`);
      if (r.settings !== undefined) {
        const st = r.settings as unknown;
        if (typeof st !== 'object' || st === null || Array.isArray(st)) bad(`bad settings of requirement ${r.name}`);
        const entries = Object.entries(st as Record<string, unknown>);
        if (entries.length > 16 || entries.some(([k, v]) => !/^[a-zA-Z][a-zA-Z0-9]{0,31}$/.test(k) || !((typeof v === 'string' && v.length <= 256) || (typeof v === 'number' && Number.isFinite(v))))) bad(`bad settings of requirement ${r.name}`);
      }
      if (r.keeps !== undefined && (!Array.isArray(r.keeps) || r.keeps.length > 8 || r.keeps.some((k) => typeof k !== 'string' || !SNAPSHOT_NAME.test(k)))) bad(`bad snapshots kept by requirement ${r.name}`);
      seen.add(r.name);
    }
  }
  if (x.version !== manifestVersion(x as Pick<Manifest, 'remote' | 'requires'>)) bad('the remote base, the requirements and the format version disagree');
  if (x.remote !== undefined) {
    const r = x.remote as RemoteRecord;
    if (typeof r !== 'object' || r === null || typeof r.url !== 'string' || r.url.length > 8192 || !/^https?:\/\//i.test(r.url)) bad('bad remote URL');
    if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) bad('bad remote size');
    for (const v of [r.etag, r.lastModified]) if (v !== undefined && (typeof v !== 'string' || v.length > 1024)) bad('bad remote validator');
    const cache = typeof r.cache === 'string' ? layers.get(r.cache) : undefined;
    if (!cache || cache.parent !== null || cache.sealed) bad('the remote cache layer is missing, sealed or not the root');
  }
  const active = layers.get(x.active as string);
  if (!active || active.sealed) bad('the active layer is missing or sealed');
  const names = new Set<string>();
  for (const s of x.snapshots as unknown[]) {
    const r = s as SnapshotRecord;
    if (typeof r !== 'object' || r === null || typeof r.name !== 'string' || !SNAPSHOT_NAME.test(r.name) || names.has(r.name)) bad('bad snapshot entry');
    const l = layers.get(r.layer);
    if (!l || !l.sealed) bad(`snapshot ${r.name} points at a missing or unsealed layer`);
    names.add(r.name);
  }
}

/**
 * The manifest's two record slots. Record version 1 (before layer links) reads as it is: links
 * are optional fields, so the upgrade is the next commit, which writes version 2.
 */
const manifestSlots = new RecordSlots<Manifest>({
  names: MANIFEST_SLOTS,
  format: 'manifest',
  label: 'manifest',
  magic: MAGIC_MANIFEST,
  kind: KIND_MANIFEST,
  maxBytes: MAX_MANIFEST_BYTES,
  decode(m, _version, name) {
    validateManifest(m, name);
    return m;
  },
});

export class ManifestStore {
  private constructor(
    private readonly ns: StoreNamespace,
    public generation: number,
    public manifest: Manifest,
    /** what each slot held when the volume was opened (both slots, in MANIFEST_SLOTS order) */
    readonly slots: readonly ManifestSlot[] = [],
  ) {}

  /** Write generation 1 of a new volume. Fails with `exists` if a manifest is already there. */
  static async create(ns: StoreNamespace, manifest: Manifest): Promise<ManifestStore> {
    for (const name of MANIFEST_SLOTS) {
      if (await ns.exists(name)) throw new StrataError('exists', `A volume already exists here (${name} found); open it, or choose an empty directory.`);
    }
    validateManifest(manifest);
    // Both slots exist from the start (flushed), so "no manifest here" is never confused with a torn first commit.
    await manifestSlots.createEmpty(ns, { flushEach: true });
    const ms = new ManifestStore(ns, 0, manifest);
    await ms.commit(manifest);
    return ms;
  }

  /**
   * Read both slots and take the newest valid generation. What each slot held is kept in
   * `slots`, so the volume can tell a torn commit (expected after a crash) from a slot that
   * was lost or replaced (a newer generation may have existed: see src/volume/newer-state.ts).
   */
  static async open(ns: StoreNamespace): Promise<ManifestStore> {
    const slots = await readManifestSlots(ns);
    const best = newestValid(slots);
    // A slot of a newer format that is newer than every slot we can read: opening the older one
    // would silently roll the volume back, so refuse and ask for an upgrade.
    const newer = newerUnsupported(slots, best);
    if (newer) throw newer.error!;
    if (slots.every((s) => s.state === 'missing' || s.state === 'empty')) {
      throw new StrataError('not-found', 'No stratadisk volume here (no manifest, or its creation never completed). Create one with `stratadisk create DIR --size 1G`.');
    }
    if (!best) throw corrupt('The volume manifest', 'neither manifest slot holds a valid generation');
    return new ManifestStore(ns, best.generation!, best.manifest!, slots);
  }

  /** Make `next` the current manifest: write generation+1 into the other slot and flush it. */
  async commit(next: Manifest): Promise<void> {
    // the version follows what the manifest holds (a requirement added or dropped changes it)
    next = { ...next, version: manifestVersion(next) };
    if (next.requires !== undefined && next.requires.length === 0) delete next.requires;
    validateManifest(next, 'The new manifest');
    for (const r of next.requires ?? []) {
      for (const k of r.keeps ?? []) {
        if (!next.snapshots.some((x) => x.name === k)) {
          throw new StrataError('locked', `Snapshot ${k} is what the volume's ${r.name === 'journal' ? 'write log' : r.name} reads through; it cannot be deleted or dropped while that is on${r.name === 'journal' ? ' (stop the log first: `stratadisk journal disable DIR`)' : ''}.`);
        }
      }
    }
    const gen = this.generation + 1;
    const payload = new TextEncoder().encode(JSON.stringify(next));
    if (payload.length > MAX_MANIFEST_BYTES) throw new StrataError('quota', `The manifest would be ${payload.length} bytes; delete some snapshots first.`);
    // Written in place, never truncated: a shorter record leaves the older bytes after its checksum.
    await manifestSlots.write(this.ns, gen, payload);
    this.generation = gen;
    this.manifest = next;
  }
}

/**
 * What one manifest slot holds: `missing` (no such file), `empty` (size 0: slot 0 of a volume
 * still at generation 1), `invalid` (not a complete record: torn by a crash, or damaged),
 * `unsupported` (a complete record of a newer format) or `valid` (a manifest of `generation`).
 */
export interface ManifestSlot {
  name: (typeof MANIFEST_SLOTS)[number];
  state: 'missing' | 'empty' | 'invalid' | 'unsupported' | 'valid';
  /** the record's generation (valid and unsupported slots) */
  generation?: number;
  manifest?: Manifest;
  /** why the slot is invalid or unsupported */
  error?: StrataError;
}

/** Read both manifest slots without judging the volume (open, check and salvage decide). */
export async function readManifestSlots(ns: StoreNamespace): Promise<ManifestSlot[]> {
  return (await manifestSlots.readAll(ns)).map((s) => {
    const out: ManifestSlot = { name: s.name as ManifestSlot['name'], state: s.state };
    if (s.generation !== undefined) out.generation = s.generation;
    if (s.value !== undefined) out.manifest = s.value;
    if (s.error !== undefined) out.error = s.error;
    return out;
  });
}
