import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FORMATS } from '../../../src/format/magic.js';
import { ActivityLog } from '../../../src/replication/activity-log.js';
import { OutOfSync } from '../../../src/replication/out-of-sync.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';

/**
 * The checked-in replication-oos/v1 fixture (test/fixtures/formats/generate.mjs, replicationOos)
 * opens with this stratadisk and holds what was written: the out-of-sync bitmap's blocks (a raw
 * page, an all-set page, runs, a mark kept by the clean close) and the activity log's extents,
 * left as a crash leaves them.
 */
const FIXTURE = fileURLToPath(new URL('../../fixtures/formats/replication-oos/v1/', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'stratadisk-oos-fixture-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const KiB = 1024;
const GEOMETRY = { size: 200 * 1024 * KiB + 3000, blockSize: 4 * KiB };

function copy(): NodeDirNamespace {
  const dir = join(work, String(Math.random()).slice(2));
  cpSync(FIXTURE, dir, { recursive: true });
  return new NodeDirNamespace(dir);
}

describe('replication-oos/v1 fixture', () => {
  it('its records are the versions this stratadisk reads, with the registry magics', () => {
    const oos = readFileSync(join(FIXTURE, 'replication.s1.oos.0'));
    const al = readFileSync(join(FIXTURE, 'replication.s1.al.1'));
    expect([oos.readUInt32LE(0), oos.readUInt16LE(6)]).toEqual([FORMATS.outOfSync.magic, 1]);
    expect([al.readUInt32LE(0), al.readUInt16LE(6)]).toEqual([FORMATS.activityLog.magic, 1]);
  });

  it('the out-of-sync bitmap holds the blocks written', async () => {
    const oos = await OutOfSync.open(copy(), 'replication.s1.oos', GEOMETRY);
    const want: number[] = [7, 1, 98, 3];
    for (let b = 1000; b < 4000; b += 2) want.push(b, 1);
    want.push(32768, 7, 32777, 18423);
    expect(oos.runs()).toEqual(want);
    expect(oos.dirtyBlocks).toBe(4 + 1500 + 7 + 18423);
    expect(oos.created).toBe(false);
    oos.markRuns([5, 1]);
    await oos.close();
  });

  it('the activity log recovers the extents in use at the crash', async () => {
    const al = await ActivityLog.open(copy(), 'replication.s1.al', GEOMETRY, { extentBytes: 1024 * KiB, maxExtents: 4 });
    expect(al.recovered).toEqual([256, 512, 1024, 256, 51200, 1]); // extents 1-2, 4 and 200 (one block long)
    await al.close();
  });

  it('a geometry other than the fixture volume is refused', async () => {
    await expect(OutOfSync.open(copy(), 'replication.s1.oos', { ...GEOMETRY, size: GEOMETRY.size + 1 })).rejects.toMatchObject({ code: 'corrupt' });
    await expect(ActivityLog.open(copy(), 'replication.s1.al', { ...GEOMETRY, blockSize: 8 * KiB })).rejects.toMatchObject({ code: 'corrupt' });
  });
});
