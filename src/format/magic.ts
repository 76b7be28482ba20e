import { StrataError } from '../errors.js';

/**
 * The registry of every format stratadisk keeps on a store: the magic that opens each of its
 * records, the versions this stratadisk reads (older ones are upgraded as they are read) and the
 * version it writes. A reader meets a version newer than any it knows with `unsupported` and a
 * message naming the stratadisk release needed ({@link newerVersion}); it never guesses.
 *
 * Magics are the first 4 bytes of a checksummed record (src/format/record.ts) read as a
 * little-endian u32, so the bytes on the store spell the tag ("SDVM" = 0x4d564453). Never reuse
 * or change one: test/fixtures/formats/ holds a store of every format as it is today, and the
 * fixture tests open them.
 *
 * Changing a format: add its new version to `reads` and set `writes`, teach the reader to
 * upgrade the old one, add a fixture `test/fixtures/formats/<format>/v<N>/` (see
 * test/fixtures/formats/README.md) and keep the old fixtures opening.
 */

/** The release of stratadisk whose formats this registry describes (package.json `version`; a test keeps them equal). */
export const STRATADISK_RELEASE = '0.1.0';

/** Record magics (u32 LE; the bytes on the store spell the comment). */
export const MAGIC_MANIFEST = 0x4d564453; // "SDVM": volume manifest slots (manifest.0/1)
export const MAGIC_MAP = 0x4c4d4453; // "SDML": layer map log (<layer>.map)
export const MAGIC_STAGING = 0x54534453; // "SDST": the mark of a staged change (staging.mark)
export const MAGIC_SHADOW_CATALOG = 0x43534453; // "SDSC": shadow catalog slots (shadows.0/1)
export const MAGIC_DIFF_AREA = 0x41534453; // "SDSA": a shadow copy's diff area (<id>.diff)
export const MAGIC_JOBS = 0x4a4a4453; // "SDJJ": job journal slots (jobs.0/1)
export const MAGIC_WRITE_LOG = 0x4c574453; // "SDWL": write log records (journal.<n>.log, src/journal/)
export const MAGIC_REPLICATION_ROLE = 0x52524453; // "SDRR": replication role slots (replication.0/1, src/replication/)
export const MAGIC_OUT_OF_SYNC = 0x534f4453; // "SDOS": replication out-of-sync bitmap (<name>.0/1, src/replication/out-of-sync.ts)
export const MAGIC_ACTIVITY_LOG = 0x4c414453; // "SDAL": replication activity log (<name>.0/1, src/replication/activity-log.ts)
export const MAGIC_RESYNC_SUMS = 0x53524453; // "SDRS": segment checksums with valid flags (resync-sums.0/1, src/resync/)
export const MAGIC_RESYNC_PROGRESS = 0x50524453; // "SDRP": a resync's progress at its destination (resync-progress.0/1, src/resync/)
/** The ASCII tag opening a saved v86 machine state (src/v86/state-file.ts). */
export const MAGIC_V86_STATE = 'V86STATE';

/**
 * Published versions in a chunk store (src/transfer/): the 8-byte tags opening a block-table
 * segment and a pack index, and the `format` of a version manifest. Their version is part of the
 * tag. (src/transfer/ still defines its own copies, checked equal to these by
 * test/node/format/magic.test.ts; it should import them from here.)
 */
export const MAGIC_SEGMENT = 'SDSEG001';
export const MAGIC_PACK_INDEX = 'SDPIDX01';
export const VERSION_MANIFEST_FORMAT = 'stratadisk-version/1';

/** `format` fields of the JSON payloads. */
export const MANIFEST_FORMAT = 'stratadisk-volume';
export const CATALOG_FORMAT = 'stratadisk-shadows';
export const AREA_FORMAT = 'stratadisk-shadow-area';

/** Record kinds of the slot formats (the `kind` field of their records). */
export const KIND_MANIFEST = 2;
export const KIND_SHADOW_CATALOG = 1;
export const KIND_JOBS = 3;
export const KIND_REPLICATION_ROLE = 4;
export const KIND_RESYNC_SUMS = 5;
export const KIND_RESYNC_PROGRESS = 6;

export interface FormatSpec {
  /** what it is, in messages */
  readonly title: string;
  /** where it lives in a namespace */
  readonly files: string;
  /** record magic (u32 LE), or an ASCII tag at offset 0 */
  readonly magic: number | string | null;
  /** versions this stratadisk reads, oldest first (all but the newest are upgraded on read) */
  readonly reads: readonly number[];
  /** the version this stratadisk writes */
  readonly writes: number;
}

/**
 * Every on-store format. Layer data (`<layer>.data`) has no header of its own: its slots are
 * described by the map log and the manifest, whose versions cover it. A copy-on-read volume is a
 * manifest of JSON version 2 (`remote`) over a cache layer: it has no format of its own either.
 */
export const FORMATS = {
  /** record version; 2 = layer links are kept (src/volume/links.ts); version-1 volumes are upgraded by their next commit */
  manifest: { title: 'volume manifest', files: 'manifest.0, manifest.1', magic: MAGIC_MANIFEST, reads: [1, 2], writes: 2 },
  /** the manifest's JSON `version`: 1 = local volume, 2 = the volume has a remote base, 3 = it has requirements (a write log); each written only then */
  manifestJson: { title: 'volume manifest', files: 'manifest.0, manifest.1', magic: MANIFEST_FORMAT, reads: [1, 2, 3], writes: 1 },
  mapLog: { title: 'layer map log', files: '<layer>.map, <layer>.<gen>.map', magic: MAGIC_MAP, reads: [1], writes: 1 },
  stagingMark: { title: 'staging mark', files: 'staging.mark', magic: MAGIC_STAGING, reads: [1], writes: 1 },
  shadowCatalog: { title: 'shadow catalog', files: 'shadows.0, shadows.1', magic: MAGIC_SHADOW_CATALOG, reads: [1], writes: 1 },
  diffArea: { title: 'shadow diff area', files: '<id>.diff', magic: MAGIC_DIFF_AREA, reads: [1], writes: 1 },
  writeLog: { title: 'write log', files: 'journal.<n>.log', magic: MAGIC_WRITE_LOG, reads: [1], writes: 1 },
  jobJournal: { title: 'job journal', files: 'jobs.0, jobs.1', magic: MAGIC_JOBS, reads: [1], writes: 1 },
  replicationRole: { title: 'replication role', files: 'replication.0, replication.1', magic: MAGIC_REPLICATION_ROLE, reads: [1], writes: 1 },
  outOfSync: { title: 'out-of-sync bitmap', files: '<name>.0, <name>.1 (replication.<session>.oos)', magic: MAGIC_OUT_OF_SYNC, reads: [1], writes: 1 },
  activityLog: { title: 'activity log', files: '<name>.0, <name>.1 (replication.<session>.al)', magic: MAGIC_ACTIVITY_LOG, reads: [1], writes: 1 },
  resyncSums: { title: 'segment checksums', files: 'resync-sums.0, resync-sums.1', magic: MAGIC_RESYNC_SUMS, reads: [1], writes: 1 },
  resyncProgress: { title: 'resync progress', files: 'resync-progress.0, resync-progress.1', magic: MAGIC_RESYNC_PROGRESS, reads: [1], writes: 1 },
  v86State: { title: 'saved v86 machine state', files: 'v86 state store', magic: MAGIC_V86_STATE, reads: [1], writes: 1 },
  segment: { title: 'block table segment', files: 'segments/<hash> (chunk store)', magic: MAGIC_SEGMENT, reads: [1], writes: 1 },
  packIndex: { title: 'pack index', files: 'packs/<hash>.idx (chunk store)', magic: MAGIC_PACK_INDEX, reads: [1], writes: 1 },
  versionManifest: { title: 'version manifest', files: 'versions/<V> (chunk store)', magic: VERSION_MANIFEST_FORMAT, reads: [1], writes: 1 },
} as const satisfies Record<string, FormatSpec>;

export type FormatName = keyof typeof FORMATS;

/** Can this stratadisk read `version` of `format`? */
export function readsVersion(format: FormatName, version: number): boolean {
  return (FORMATS[format].reads as readonly number[]).includes(version);
}

function list(versions: readonly number[]): string {
  if (versions.length === 1) return `version ${versions[0]}`;
  return `versions ${versions.slice(0, -1).join(', ')} and ${versions[versions.length - 1]}`;
}

/**
 * The `unsupported` error for `what` holding `version` of `format`, which this stratadisk does
 * not read: a newer release wrote it, so the user needs a release newer than this one.
 */
export function newerVersion(format: FormatName, what: string, version: unknown): StrataError {
  return new StrataError(
    'unsupported',
    `${what} has format version ${String(version)}; this stratadisk reads ${list(FORMATS[format].reads)}. Upgrade stratadisk: it was written by a release newer than ${STRATADISK_RELEASE}.`,
  );
}
