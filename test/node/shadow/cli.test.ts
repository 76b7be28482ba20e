import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ok, pattern, tempDir, KiB } from '../cli/harness.js';

describe('stratadisk shadow', () => {
  it('create, write, list, export (sparse raw), delete in any order', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const vol = join(dir, 'disk.raw');
      const original = new Uint8Array(9 * 1024 * KiB); // data only in the first MiB: the 4 MiB export pieces after it are holes
      original.set(pattern(100 * KiB, 1), 0);
      original.set(pattern(64 * KiB, 2), 512 * KiB);
      writeFileSync(vol, original);
      expect(await ok(['shadow', 'create', vol, '--name', 'first', '--block-size', '4K'])).toContain('Shadow copy first');
      const patch = join(dir, 'patch.bin');
      writeFileSync(patch, pattern(200 * KiB, 3));
      expect(await ok(['shadow', 'write', vol, patch, '--offset', '50K'])).toContain('Wrote');
      const afterFirst = readFileSync(vol);
      expect(await ok(['shadow', 'create', vol, '--name', 'second', '--on-full', 'fail', '--max-size', '1M'])).toContain('limit 1 MiB');
      writeFileSync(patch, pattern(300 * KiB, 4));
      await ok(['shadow', 'write', vol, patch, '--offset', '0']);
      const list = JSON.parse(await ok(['shadow', 'list', vol, '--json'])) as { name: string; preservedBlocks: number; state: string }[];
      expect(list.map((c) => c.name)).toEqual(['first', 'second']);
      expect(list[0]!.preservedBlocks).toBe(51); // 50K..250K at 4K blocks: blocks 12..62
      expect(await ok(['shadow', 'list', vol])).toContain('second');
      // delete the older first, then export the newer: still exact
      const out1 = join(dir, 'first.raw');
      await ok(['shadow', 'export', vol, 'first', out1]);
      expect(Buffer.compare(readFileSync(out1), Buffer.from(original))).toBe(0);
      expect(statSync(out1).blocks * 512).toBeLessThan(original.length); // sparse: zero ranges are holes
      await ok(['shadow', 'delete', vol, 'first']);
      const out2 = join(dir, 'second.raw');
      await ok(['shadow', 'export', vol, 'second', out2]);
      expect(Buffer.compare(readFileSync(out2), afterFirst)).toBe(0);
      const gone = await cli(['shadow', 'export', vol, 'first', join(dir, 'x.raw')]);
      expect(gone.code).toBe(2);
      expect(gone.stderr).toContain('not-found');
      await ok(['shadow', 'delete', vol, 'second']);
      expect(await ok(['shadow', 'list', vol])).toContain('no shadow copies');
      const bad = await cli(['shadow', 'frobnicate', vol]);
      expect(bad.code).not.toBe(0);
    } finally {
      cleanup();
    }
  });

  it("shadow delete releases the copy's limit: a write its 'fail' policy refused goes through afterwards", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const vol = join(dir, 'disk.raw');
      const original = pattern(1024 * KiB, 5);
      writeFileSync(vol, original);
      await ok(['shadow', 'create', vol, '--name', 'O', '--block-size', '4K']);
      await ok(['shadow', 'create', vol, '--name', 'F', '--on-full', 'fail', '--max-size', '32K']);
      const patch = join(dir, 'patch.bin');
      writeFileSync(patch, pattern(200 * KiB, 6));
      const refused = await cli(['shadow', 'write', vol, patch, '--offset', '0']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/^stratadisk: quota: .*shadow copy F/);
      expect(Buffer.compare(readFileSync(vol), Buffer.from(original))).toBe(0);
      await ok(['shadow', 'delete', vol, 'F']);
      const again = await cli(['shadow', 'write', vol, patch, '--offset', '0']);
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      const list = JSON.parse(await ok(['shadow', 'list', vol, '--json'])) as { name: string; preservedBlocks: number }[];
      expect(list.map((c) => [c.name, c.preservedBlocks])).toEqual([['O', 50]]);
      const out = join(dir, 'O.raw');
      await ok(['shadow', 'export', vol, 'O', out]);
      expect(Buffer.compare(readFileSync(out), Buffer.from(original))).toBe(0);
    } finally {
      cleanup();
    }
  });
});
