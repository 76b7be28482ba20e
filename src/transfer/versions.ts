/**
 * The versions and tags of the images in an object store (README.md in this folder): what
 * `stratadisk versions` lists and what gc keeps or deletes. Every manifest is verified.
 */
import { isStrataError, StrataError } from '../errors.js';
import type { ObjectStore } from './object-store.js';
import { checkName, HEX_ID, NAME } from './object-names.js';
import { loadManifest, resolveVersion } from './published-version.js';
import type { VersionManifest } from './version-manifest.js';

export interface VersionInfo {
  image: string;
  contentId: string;
  created: string;
  size: number;
  blockSize: number;
  chunks: number;
  storedBytes: number;
  tags: string[];
}

export interface TagInfo {
  image: string;
  tag: string;
  /** null when the tag object is damaged */
  version: string | null;
}

export interface DamagedVersion {
  image: string;
  contentId: string;
  error: StrataError;
}

export interface StoreVersions {
  /** by image, newest first */
  versions: VersionInfo[];
  tags: TagInfo[];
  /** markers whose manifest is missing or damaged */
  damaged: DamagedVersion[];
  manifests: Map<string, VersionManifest>;
}

/** Images and their markers and tags, from one listing of `images/`. */
export async function scanImages(objects: ObjectStore, image?: string, signal?: AbortSignal): Promise<{ markers: { image: string; contentId: string }[]; tags: { image: string; tag: string }[] }> {
  const prefix = image === undefined ? 'images/' : `images/${checkName(image, 'image')}/`;
  const markers: { image: string; contentId: string }[] = [];
  const tags: { image: string; tag: string }[] = [];
  for await (const o of objects.list(prefix, signal)) {
    const m = /^images\/([^/]+)\/(versions|tags)\/([^/]+)$/.exec(o.key);
    if (!m || !NAME.test(m[1]!)) continue;
    if (m[2] === 'versions' && HEX_ID.test(m[3]!)) markers.push({ image: m[1]!, contentId: m[3]! });
    else if (m[2] === 'tags' && NAME.test(m[3]!)) tags.push({ image: m[1]!, tag: m[3]! });
  }
  return { markers, tags };
}

export async function listVersions(objects: ObjectStore, options: { image?: string; signal?: AbortSignal } = {}): Promise<StoreVersions> {
  const { markers, tags } = await scanImages(objects, options.image, options.signal);
  const tagInfo: TagInfo[] = [];
  for (const t of tags) {
    let version: string | null;
    try {
      version = await resolveVersion(objects, t, options.signal);
    } catch (e) {
      if (!isStrataError(e, 'corrupt') && !isStrataError(e, 'not-found')) throw e;
      version = null;
    }
    tagInfo.push({ ...t, version });
  }
  const manifests = new Map<string, VersionManifest>();
  const versions: VersionInfo[] = [];
  const damaged: DamagedVersion[] = [];
  for (const mk of markers) {
    let m = manifests.get(mk.contentId);
    if (!m) {
      try {
        m = await loadManifest(objects, mk.contentId, options.signal);
      } catch (e) {
        if (!(e instanceof StrataError) || !['corrupt', 'checksum-mismatch', 'not-found'].includes(e.code)) throw e;
        damaged.push({ ...mk, error: e });
        continue;
      }
      manifests.set(mk.contentId, m);
    }
    versions.push({
      image: mk.image,
      contentId: mk.contentId,
      created: m.created,
      size: m.size,
      blockSize: m.blockSize,
      chunks: m.chunks,
      storedBytes: m.storedBytes,
      tags: tagInfo.filter((t) => t.image === mk.image && t.version === mk.contentId).map((t) => t.tag).sort(),
    });
  }
  versions.sort((a, b) => (a.image !== b.image ? (a.image < b.image ? -1 : 1) : Date.parse(b.created) - Date.parse(a.created) || (a.contentId < b.contentId ? -1 : 1)));
  return { versions, tags: tagInfo, damaged, manifests };
}
