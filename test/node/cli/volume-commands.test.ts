import { closeSync, ftruncateSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, KiB, MiB, ok, pattern, tempDir } from './harness.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

/** A mostly-zero raw image: data at a few places, zeros (holes) elsewhere. */
function sparseImage(path: string, size: number, pieces: [offset: number, length: number, seed: number][]): Buffer {
  const model = Buffer.alloc(size);
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [off, len, seed] of pieces) {
      const b = pattern(len, seed);
      writeSync(fd, b, 0, len, off);
      model.set(b, off);
    }
  } finally {
    closeSync(fd);
  }
  return model;
}

describe('create and info', () => {
  it('creates a volume and reports its fields as JSON', async () => {
    const vol = join(dir, 'vol');
    expect(await ok(['create', vol, '--size', '1G', '--block-size', '64K'])).toMatch(/Created .*1 GiB/);
    const info = JSON.parse(await ok(['info', vol, '--json']));
    expect(info).toMatchObject({ path: vol, size: 2 ** 30, blockSize: 64 * KiB, allocatedBytes: 0, readOnly: true, snapshots: [] });
    expect(info.layers).toHaveLength(1);
    expect(typeof info.active.contentId).toBe('string');
    expect(info.chain).toEqual([info.active.layer]);
    const text = await ok(['info', vol]);
    expect(text).toMatch(/size\s+1 GiB \(1073741824 bytes\)/);
    expect(text).toMatch(/block size\s+64 KiB/);
  });

  it('uses 64K blocks by default and refuses to create over an existing volume', async () => {
    const vol = join(dir, 'vol');
    await ok(['create', vol, '--size', '10M']);
    expect(JSON.parse(await ok(['info', vol, '--json'])).blockSize).toBe(64 * KiB);
    const again = await cli(['create', vol, '--size', '10M']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^stratadisk: exists: /);
  });

  it('rejects a block size that is not a power of two in range', async () => {
    const r = await cli(['create', join(dir, 'v'), '--size', '1M', '--block-size', '3K']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: invalid-argument: Block size 3072/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('import and export', () => {
  it('imports a raw file storing no zero blocks, and exports it byte-identical and sparse', async () => {
    const vol = join(dir, 'vol');
    const src = join(dir, 'src.img');
    const size = 64 * MiB;
    const model = sparseImage(src, size, [
      [0, 3 * 64 * KiB, 1],
      [10 * MiB + 123, 5000, 2], // unaligned: touches two blocks
      [size - 64 * KiB, 64 * KiB, 3],
    ]);
    await ok(['create', vol, '--size', '64M']);
    expect(await ok(['import', vol, src])).toMatch(/Imported 64 MiB/);
    const info = JSON.parse(await ok(['info', vol, '--json']));
    expect(info.active.dataBlocks).toBe(3 + 1 + 1);
    expect(info.active.zeroBlocks).toBe(0);
    expect(info.allocatedBytes).toBe(5 * 64 * KiB);

    const out = join(dir, 'out.img');
    expect(await ok(['export', vol, out])).toMatch(/the rest are holes/);
    const st = statSync(out);
    expect(st.size).toBe(size);
    expect(Buffer.compare(readFileSync(out), model)).toBe(0);
    expect(st.blocks * 512).toBeLessThan(size / 4);
  });

  it('export replaces an existing, larger file', async () => {
    const vol = join(dir, 'vol');
    await ok(['create', vol, '--size', '1M', '--block-size', '4K']);
    const out = join(dir, 'out.img');
    writeFileSync(out, Buffer.alloc(3 * MiB, 0xff));
    await ok(['export', vol, out]);
    expect(statSync(out).size).toBe(MiB);
    expect(readFileSync(out).every((b) => b === 0)).toBe(true);
  });

  it('refuses a file larger than the volume', async () => {
    const vol = join(dir, 'vol');
    await ok(['create', vol, '--size', '64K', '--block-size', '4K']);
    const src = join(dir, 'big.img');
    writeFileSync(src, Buffer.alloc(65 * KiB, 1));
    const r = await cli(['import', vol, src]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: out-of-range: .*larger than the volume/);
  });

  it('stops cleanly when cancelled, leaving a volume that opens and checks', async () => {
    const vol = join(dir, 'vol');
    const src = join(dir, 'src.img');
    sparseImage(src, 32 * MiB, [[0, 32 * MiB, 9]]);
    await ok(['create', vol, '--size', '32M']);
    const ac = new AbortController();
    ac.abort();
    const r = await cli(['import', vol, src], { signal: ac.signal });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/^stratadisk: interrupted/);
    expect((await cli(['check', vol])).code).toBe(0);
  });
});

describe('write', () => {
  it('writes a file at an unaligned offset, and standard input with -', async () => {
    const vol = join(dir, 'vol');
    await ok(['create', vol, '--size', '1M', '--block-size', '4K']);
    const data = pattern(10_000, 5);
    const f = join(dir, 'piece.bin');
    writeFileSync(f, data);
    expect(await ok(['write', vol, '--offset', '1000', f])).toMatch(/Wrote .*10000 bytes\) at offset 1000/);
    const stdin = pattern(3000, 6);
    await ok(['write', vol, '--offset', '64K', '-'], { stdinBytes: stdin });
    const out = join(dir, 'out.img');
    await ok(['export', vol, out]);
    const got = readFileSync(out);
    const want = Buffer.alloc(MiB);
    want.set(data, 1000);
    want.set(stdin, 64 * KiB);
    expect(Buffer.compare(got, want)).toBe(0);
  });

  it('requires --offset and refuses data that would run past the end', async () => {
    const vol = join(dir, 'vol');
    await ok(['create', vol, '--size', '64K', '--block-size', '4K']);
    const f = join(dir, 'piece.bin');
    writeFileSync(f, pattern(8192, 1));
    const missing = await cli(['write', vol, f]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--offset is required/);
    const past = await cli(['write', vol, '--offset', '60K', f]);
    expect(past.code).toBe(2);
    expect(past.stderr).toMatch(/^stratadisk: out-of-range: /);
    const fromStdin = await cli(['write', vol, '--offset', '60K', '-'], { stdinBytes: pattern(8192, 2) });
    expect(fromStdin.code).toBe(2);
    expect(fromStdin.stderr).toMatch(/^stratadisk: out-of-range: The input is larger than the 4 KiB from offset 61440 to the end of .*\. Nothing was written to /);
  });
});

describe('snapshots', () => {
  it('snapshot, snapshots, export DIR@NAME, revert, delete-snapshot', async () => {
    const vol = join(dir, 'vol');
    await ok(['create', vol, '--size', '1M', '--block-size', '4K']);
    const a = join(dir, 'a.bin');
    const b = join(dir, 'b.bin');
    writeFileSync(a, pattern(MiB, 1));
    writeFileSync(b, pattern(100 * KiB, 2));
    await ok(['import', vol, a]);
    expect(await ok(['snapshot', vol, 'one'])).toMatch(/Snapshot one/);
    await ok(['write', vol, '--offset', '0', b]);
    await ok(['snapshot', vol, 'two']);

    const list = JSON.parse(await ok(['snapshots', vol, '--json']));
    expect(list.map((s: { name: string }) => s.name)).toEqual(['one', 'two']);
    expect(list[0]).toHaveProperty('contentId');
    expect(await ok(['snapshots', vol])).toMatch(/one[\s\S]*two/);

    const one = join(dir, 'one.img');
    await ok(['export', `${vol}@one`, one]);
    expect(Buffer.compare(readFileSync(one), readFileSync(a))).toBe(0);

    const dup = await cli(['snapshot', vol, 'one']);
    expect(dup.code).toBe(2);
    expect(dup.stderr).toMatch(/^stratadisk: exists: /);

    await ok(['revert', vol, 'one']);
    const live = join(dir, 'live.img');
    await ok(['export', vol, live]);
    expect(Buffer.compare(readFileSync(live), readFileSync(a))).toBe(0);

    await ok(['delete-snapshot', vol, 'one']);
    expect(JSON.parse(await ok(['snapshots', vol, '--json'])).map((s: { name: string }) => s.name)).toEqual(['two']);
    const two = join(dir, 'two.img');
    await ok(['export', `${vol}@two`, two]);
    const want = Buffer.from(readFileSync(a));
    want.set(readFileSync(b), 0);
    expect(Buffer.compare(readFileSync(two), want)).toBe(0);
    // live still equals the reverted content after the merge
    await ok(['export', vol, live]);
    expect(Buffer.compare(readFileSync(live), readFileSync(a))).toBe(0);

    const gone = await cli(['export', `${vol}@one`, one]);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toMatch(/^stratadisk: not-found: No snapshot named "one"/);
    expect((await cli(['revert', vol, 'nope'])).code).toBe(2);
    expect((await cli(['delete-snapshot', vol, 'nope'])).stderr).toMatch(/not-found/);
    expect(await ok(['snapshots', join(dir, 'vol')])).not.toMatch(/\bone\b/);
  });

  it('refuses to write to DIR@NAME and rejects bad snapshot names', async () => {
    const vol = join(dir, 'vol');
    await ok(['create', vol, '--size', '64K', '--block-size', '4K']);
    await ok(['snapshot', vol, 's']);
    const f = join(dir, 'x');
    writeFileSync(f, 'x');
    const r = await cli(['write', `${vol}@s`, '--offset', '0', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/names a snapshot, which is read-only/);
    const bad = await cli(['snapshot', vol, 'no/slash']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^stratadisk: invalid-argument: /);
  });
});

describe('map', () => {
  it('prints qemu-img style extents covering the whole volume, and a table', async () => {
    const vol = join(dir, 'vol');
    const size = 4 * MiB + 3 * KiB; // not a multiple of the block size
    await ok(['create', vol, '--size', String(size), '--block-size', '64K']);
    const f = join(dir, 'p');
    writeFileSync(f, pattern(128 * KiB, 1));
    await ok(['write', vol, '--offset', '1M', f]);
    await ok(['snapshot', vol, 's']);
    writeFileSync(f, pattern(64 * KiB, 2));
    await ok(['write', vol, '--offset', '1M', f]);

    const stdout = await ok(['map', vol, '--json']);
    const extents = JSON.parse(stdout) as Record<string, unknown>[];
    expect(stdout.split('\n').filter((l) => l.trim()).length).toBe(extents.length); // one per line
    let at = 0;
    for (const e of extents) {
      expect(Object.keys(e).slice(0, 6)).toEqual(['start', 'length', 'depth', 'present', 'zero', 'data']);
      expect(e.start).toBe(at);
      at += e.length as number;
    }
    expect(at).toBe(size);
    const data = extents.filter((e) => e.data);
    expect(data).toEqual([
      expect.objectContaining({ start: MiB, length: 64 * KiB, depth: 0, present: true, zero: false }),
      expect.objectContaining({ start: MiB + 64 * KiB, length: 64 * KiB, depth: 1, present: true, zero: false }),
    ]);
    expect(extents[0]).toMatchObject({ start: 0, depth: 2, present: false, zero: true, data: false });

    const snap = JSON.parse(await ok(['map', `${vol}@s`, '--json'])) as { data: boolean; depth: number }[];
    expect(snap.filter((e) => e.data).every((e) => e.depth === 0)).toBe(true);

    const table = await ok(['map', vol]);
    expect(table.split('\n')[0]).toMatch(/start\s+length\s+size\s+depth\s+present\s+zero\s+data\s+layer/);
  });
});
