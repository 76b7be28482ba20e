/**
 * The format registry (src/format/magic.ts): every record magic spells its tag on the store and
 * is used once; each format writes a version it reads; the release named in `unsupported`
 * messages is this package's version; the modules that used to define the constants still
 * export the same values.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as magic from '../../../src/format/magic.js';
import { FORMATS, STRATADISK_RELEASE, newerVersion } from '../../../src/format/magic.js';
import { MAGIC_MANIFEST, MAGIC_MAP, MAGIC_STAGING } from '../../../src/format/record.js';
import { MANIFEST_FORMAT, MANIFEST_RECORD_VERSION } from '../../../src/format/manifest.js';
import { MAP_FORMAT_VERSION } from '../../../src/format/map-log.js';
import { MAGIC_JOBS } from '../../../src/jobs/job-journal.js';
import { CATALOG_FORMAT, CATALOG_VERSION, MAGIC_SHADOW_CATALOG } from '../../../src/shadow/catalog.js';
import { AREA_FORMAT, AREA_VERSION, MAGIC_DIFF_AREA } from '../../../src/shadow/diff-area.js';
import { PACK_INDEX_MAGIC } from '../../../src/transfer/pack-index.js';
import { SEGMENT_MAGIC } from '../../../src/transfer/segment.js';
import { VERSION_FORMAT } from '../../../src/transfer/version-manifest.js';

const tag = (m: number) => String.fromCharCode(m & 255, (m >>> 8) & 255, (m >>> 16) & 255, m >>> 24);

describe('format registry', () => {
  it('record magics spell SD.. on the store and are distinct', () => {
    const magics = Object.entries(magic).filter(([k, v]) => k.startsWith('MAGIC_') && typeof v === 'number') as [string, number][];
    expect(magics.map(([k, v]) => [k, tag(v)])).toEqual([
      ['MAGIC_MANIFEST', 'SDVM'],
      ['MAGIC_MAP', 'SDML'],
      ['MAGIC_STAGING', 'SDST'],
      ['MAGIC_SHADOW_CATALOG', 'SDSC'],
      ['MAGIC_DIFF_AREA', 'SDSA'],
      ['MAGIC_JOBS', 'SDJJ'],
      ['MAGIC_WRITE_LOG', 'SDWL'],
      ['MAGIC_REPLICATION_ROLE', 'SDRR'],
      ['MAGIC_OUT_OF_SYNC', 'SDOS'],
      ['MAGIC_ACTIVITY_LOG', 'SDAL'],
      ['MAGIC_RESYNC_SUMS', 'SDRS'],
      ['MAGIC_RESYNC_PROGRESS', 'SDRP'],
    ]);
    const all = Object.values(FORMATS).map((f) => f.magic).filter((m) => typeof m === 'number');
    expect(new Set(all).size).toBe(all.length);
  });

  it('each format writes a version it reads, its versions ascending', () => {
    for (const [name, f] of Object.entries(FORMATS)) {
      expect(f.reads as readonly number[], name).toContain(f.writes);
      expect([...f.reads].sort((a, b) => a - b), name).toEqual([...f.reads]);
    }
  });

  it('the release named in messages is the package version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(STRATADISK_RELEASE).toBe(pkg.version);
    expect(newerVersion('manifest', 'manifest.1', 3).message).toBe(
      `manifest.1 has format version 3; this stratadisk reads versions 1 and 2. Upgrade stratadisk: it was written by a release newer than ${pkg.version}.`,
    );
    expect(newerVersion('jobJournal', 'jobs.0', 2)).toMatchObject({ code: 'unsupported', message: expect.stringContaining('reads version 1.') });
  });

  it('the old homes of the constants export the registry values', () => {
    expect([MAGIC_MANIFEST, MAGIC_MAP, MAGIC_STAGING, MAGIC_JOBS, MAGIC_SHADOW_CATALOG, MAGIC_DIFF_AREA]).toEqual([
      FORMATS.manifest.magic,
      FORMATS.mapLog.magic,
      FORMATS.stagingMark.magic,
      FORMATS.jobJournal.magic,
      FORMATS.shadowCatalog.magic,
      FORMATS.diffArea.magic,
    ]);
    expect([SEGMENT_MAGIC, PACK_INDEX_MAGIC, VERSION_FORMAT]).toEqual([magic.MAGIC_SEGMENT, magic.MAGIC_PACK_INDEX, magic.VERSION_MANIFEST_FORMAT]);
    expect([MANIFEST_FORMAT, CATALOG_FORMAT, AREA_FORMAT]).toEqual(['stratadisk-volume', 'stratadisk-shadows', 'stratadisk-shadow-area']);
    expect([MANIFEST_RECORD_VERSION, MAP_FORMAT_VERSION, CATALOG_VERSION, AREA_VERSION]).toEqual([FORMATS.manifest.writes, FORMATS.mapLog.writes, FORMATS.shadowCatalog.writes, FORMATS.diffArea.writes]);
  });
});
