/**
 * gc of an object store (README.md in this folder, "gc"): keep the newest `keep` versions of each
 * image and every tagged version; delete the other versions, then every segment and pack that no
 * kept version names. It never deletes what it cannot prove unused: a kept version whose
 * manifest or segments cannot be read stops it before anything is deleted. A live publish
 * lease stops it too (`locked`): publish and gc exclude each other.
 */
import { StrataError } from '../errors.js';
import { listPacks } from './chunk-catalog.js';
import { takeLease, type LeaseOptions } from './leases.js';
import type { ObjectStore } from './object-store.js';
import { HEX_ID, indexKey, LEASES, markerKey, packKey } from './object-names.js';
import { loadSegment } from './published-version.js';
import { listVersions } from './versions.js';

export interface GcOptions {
  keep: number;
  signal?: AbortSignal;
  lease?: Omit<LeaseOptions, 'signal'>;
  /** report what would be deleted, delete nothing */
  dryRun?: boolean;
}

export interface GcResult {
  keptVersions: number;
  deletedVersions: number;
  deletedSegments: number;
  deletedPacks: number;
  /** bytes of the objects deleted (packs, indexes, segments, manifests) */
  bytesFreed: number;
  keptPacks: number;
}

const BATCH = 500;

export async function gc(objects: ObjectStore, options: GcOptions): Promise<GcResult> {
  if (!Number.isSafeInteger(options.keep) || options.keep < 0) throw new StrataError('invalid-argument', `--keep must be a whole number ≥ 0, not ${options.keep}.`);
  const signal = options.signal;
  const lease = await takeLease(objects, 'gc', { ...options.lease, ...(signal ? { signal } : {}) });
  try {
    const { versions, tags, damaged, manifests } = await listVersions(objects, signal ? { signal } : {});
    const bad = damaged.filter((d) => d.error.code !== 'not-found');
    if (bad.length > 0) {
      throw new StrataError(bad[0]!.error.code, `gc did nothing: version ${bad[0]!.contentId} of image ${bad[0]!.image} cannot be read (${bad[0]!.error.message}) Remove its marker ${markerKey(bad[0]!.image, bad[0]!.contentId)} if the version is lost, then run gc again.`);
    }
    const kept = new Set<string>();
    const dropMarkers: string[] = damaged.map((d) => markerKey(d.image, d.contentId));
    const perImage = new Map<string, number>();
    for (const v of versions) {
      const n = perImage.get(v.image) ?? 0;
      perImage.set(v.image, n + 1);
      if (n < options.keep || v.tags.length > 0) kept.add(v.contentId);
    }
    for (const t of tags) if (t.version !== null && manifests.has(t.version)) kept.add(t.version);
    for (const v of versions) if (!kept.has(v.contentId)) dropMarkers.push(markerKey(v.image, v.contentId));

    // Everything the kept versions name, each segment verified: what cannot be read stops gc.
    const liveSegments = new Set<string>();
    const livePacks = new Set<string>();
    for (const id of kept) {
      const m = manifests.get(id)!;
      for (let i = 0; i < m.segments.length; i++) {
        if (liveSegments.has(m.segments[i]!.id)) {
          // same segment object, same packs (already collected)
          continue;
        }
        let seg;
        try {
          seg = await loadSegment(objects, m, i, signal);
        } catch (e) {
          if (e instanceof StrataError) throw new StrataError(e.code, `gc did nothing: kept version ${id} cannot be read: ${e.message}`, { cause: e });
          throw e;
        }
        liveSegments.add(m.segments[i]!.id);
        for (const p of seg.packs) livePacks.add(p);
      }
    }

    const doomed: { key: string; size: number }[] = [];
    let deletedVersions = 0;
    for await (const o of objects.list('versions/', signal)) {
      const id = o.key.slice('versions/'.length);
      if (HEX_ID.test(id) && !kept.has(id)) {
        doomed.push(o);
        deletedVersions++;
      }
    }
    let deletedSegments = 0;
    const segs: { key: string; size: number }[] = [];
    for await (const o of objects.list('segments/', signal)) {
      const id = o.key.slice('segments/'.length);
      if (HEX_ID.test(id) && !liveSegments.has(id)) {
        segs.push(o);
        deletedSegments++;
      }
    }
    const listing = await listPacks(objects, signal);
    const indexes: { key: string; size: number }[] = [];
    const packs: { key: string; size: number }[] = [];
    for (const p of listing.indexes) if (!livePacks.has(p)) indexes.push({ key: indexKey(p), size: 0 });
    for (const [p, size] of listing.packs) if (!livePacks.has(p)) packs.push({ key: packKey(p), size });
    const deletedPacks = new Set([...listing.indexes, ...listing.packs.keys()].filter((p) => !livePacks.has(p))).size;
    for (const p of livePacks) {
      if (!listing.packs.has(p)) throw new StrataError('not-found', `gc did nothing: ${packKey(p)}, which a kept version uses, is missing from ${objects.description}. Publish that version again.`);
    }

    const result: GcResult = {
      keptVersions: kept.size,
      deletedVersions,
      deletedSegments,
      deletedPacks,
      bytesFreed: [...doomed, ...segs, ...packs].reduce((n, o) => n + o.size, 0),
      keptPacks: livePacks.size,
    };
    if (options.dryRun) return result;
    // Markers first (the versions stop being listed), then manifests (they stop being readable),
    // then what only they named; an index before its pack (a pack without index is unfinished).
    const stages = [dropMarkers, doomed.map((o) => o.key), segs.map((o) => o.key), indexes.map((o) => o.key), packs.map((o) => o.key)];
    for (const keys of stages) {
      for (let i = 0; i < keys.length; i += BATCH) {
        lease.assertHeld();
        if (signal?.aborted) throw new StrataError('aborted', 'gc was cancelled; what it deleted was unused, and running it again finishes the job.');
        await objects.delete(keys.slice(i, i + BATCH), signal);
      }
    }
    // Expired leases of crashed processes.
    const now = Date.now();
    const stale: string[] = [];
    for await (const o of objects.list(LEASES, signal)) {
      if (o.key === lease.key || o.size > 4096) continue;
      const b = await objects.get(o.key, undefined, signal);
      try {
        const j = JSON.parse(new TextDecoder().decode(b ?? new Uint8Array())) as { expires?: unknown };
        if (typeof j.expires === 'number' && j.expires < now - 60_000) stale.push(o.key);
      } catch {
        // a lease being written: left alone
      }
    }
    if (stale.length > 0) await objects.delete(stale, signal);
    return result;
  } finally {
    await lease.release();
  }
}

