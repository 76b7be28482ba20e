import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { progressIn } from '../../../src/resync/progress.js';
import { SegmentSums } from '../../../src/resync/segment-sums.js';
import { Volume } from '../../../src/volume/volume.js';
import { hashSegments128 } from '../../../src/wasm/index.js';

/** test/fixtures/formats/resync/v1 (see its README row): the checksums and the progress as version 1 wrote them. */
const FIXTURE = fileURLToPath(new URL('../../fixtures/formats/resync/v1', import.meta.url));
const KiB = 1024;
const work = mkdtempSync(join(tmpdir(), 'stratadisk-resync-fixture-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('resync/v1 fixture', () => {
  it('its checksums are trusted, segment 3 is invalid, the valid ones match the content; its progress reads back', async () => {
    const dir = join(work, 'v');
    cpSync(FIXTURE, dir, { recursive: true });
    const v = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
    const s = await SegmentSums.open(v, { segmentSize: 64 * KiB });
    expect(s.distrust).toBeNull();
    expect([...s.valid]).toEqual([1, 1, 1, 0]);
    const want = hashSegments128(await v.read(0, v.size), 64 * KiB);
    expect(Buffer.compare(Buffer.from(s.hashes.subarray(0, 48)), Buffer.from(want.subarray(0, 48)))).toBe(0);
    expect(await progressIn(v.ns).load()).toEqual({ src: 'file:/images/source.raw', dst: 'volume:fixture', size: 256 * KiB, segmentSize: 64 * KiB, next: 2, copiedBefore: 1 });
    await v.close();
  });
});
