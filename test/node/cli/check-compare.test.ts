import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, openSync, readdirSync, readFileSync, readSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, KiB, MiB, ok, pattern, tempDir } from './harness.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

async function volumeWithData(name = 'vol'): Promise<{ vol: string; src: string }> {
  const vol = join(dir, name);
  const src = join(dir, `${name}.img`);
  const img = Buffer.alloc(2 * MiB);
  img.set(pattern(300 * KiB, 7), 64 * KiB);
  writeFileSync(src, img);
  await ok(['create', vol, '--size', '2M', '--block-size', '64K']);
  await ok(['import', vol, src]);
  return { vol, src };
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0]! ^= 0x40;
    writeSync(fd, b, 0, 1, at);
  } finally {
    closeSync(fd);
  }
}

describe('check', () => {
  it('exits 0 on a healthy volume, with a JSON report', async () => {
    const { vol } = await volumeWithData();
    expect(await ok(['check', vol])).toMatch(/^OK: 1 layer\(s\), 5 data blocks/);
    const report = JSON.parse(await ok(['check', vol, '--json']));
    expect(report).toMatchObject({ ok: true, layers: 1, blocksChecked: 5, bytesChecked: 5 * 64 * KiB, problems: [] });
  });

  it('exits 1 and names the block when a data byte is flipped', async () => {
    const { vol } = await volumeWithData();
    await ok(['snapshot', vol, 's']);
    const data = readdirSync(vol).filter((f) => /^L\d+\.data$/.test(f)).sort()[0]!;
    flipByte(join(vol, data), 64 * KiB + 100); // inside the second stored block
    const r = await cli(['check', vol]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/1 problem\(s\)/);
    expect(r.stdout).toMatch(/checksum-mismatch/);
    const report = JSON.parse((await cli(['check', vol, '--json'])).stdout);
    expect(report.ok).toBe(false);
    expect(report.problems).toHaveLength(1);
    expect(report.problems[0]).toMatchObject({ code: 'checksum-mismatch', layer: data.replace('.data', '') });
  });

  it('exits 2 when there is no volume', async () => {
    const r = await cli(['check', join(dir, 'nothing')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: not-found: No volume at .*stratadisk create/);
    const empty = await cli(['check', dir]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/^stratadisk: not-found: No stratadisk volume in /);
  });

  it('read-only commands leave every file of the volume untouched', async () => {
    const { vol } = await volumeWithData();
    await ok(['snapshot', vol, 's']);
    const snapshotFiles = () => readdirSync(vol).sort().map((f) => [f, statSync(join(vol, f)).mtimeMs, readFileSync(join(vol, f)).toString('base64')]);
    const before = snapshotFiles();
    await ok(['info', vol]);
    await ok(['snapshots', vol]);
    await ok(['map', `${vol}@s`]);
    await ok(['check', vol]);
    await ok(['export', vol, join(dir, 'out.img')]);
    await ok(['compare', vol, `${vol}@s`]);
    expect(snapshotFiles()).toEqual(before);
  });

  it.skipIf(process.getuid?.() === 0)('works on a read-only volume directory (skipped as root: root ignores file modes)', async () => {
    const { vol } = await volumeWithData();
    await ok(['snapshot', vol, 's']);
    const files = readdirSync(vol);
    for (const f of files) chmodSync(join(vol, f), 0o444);
    chmodSync(vol, 0o555);
    try {
      await ok(['check', vol]);
      await ok(['info', vol, '--json']);
      await ok(['map', `${vol}@s`, '--json']);
      await ok(['snapshots', vol]);
      await ok(['export', vol, join(dir, 'out.img')]);
      const w = await cli(['snapshot', vol, 't']);
      expect(w.code).toBe(2);
      expect(w.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      chmodSync(vol, 0o755);
      for (const f of files) chmodSync(join(vol, f), 0o644);
    }
  });
});

describe('compare', () => {
  it('0 for equal, 1 for different, 2 for errors, across volumes, snapshots and raw files', async () => {
    const { vol, src } = await volumeWithData();
    expect((await cli(['compare', vol, src])).code).toBe(0);
    expect((await cli(['compare', src, vol])).stdout).toMatch(/^Identical: 2 MiB/);
    await ok(['snapshot', vol, 'before']);
    const patch = join(dir, 'patch');
    writeFileSync(patch, Buffer.from([1, 2, 3]));
    await ok(['write', vol, '--offset', '1000000', patch]);
    expect((await cli(['compare', `${vol}@before`, src])).code).toBe(0);
    const d = await cli(['compare', vol, `${vol}@before`]);
    expect(d.code).toBe(1);
    expect(d.stdout).toMatch(/differs at offset 1000000 /);
    // another volume with the same content
    const other = join(dir, 'other');
    await ok(['create', other, '--size', '2M', '--block-size', '4K']);
    await ok(['import', other, src]);
    expect((await cli(['compare', other, `${vol}@before`])).code).toBe(0);
    // different sizes differ
    const short = join(dir, 'short.img');
    writeFileSync(short, readFileSync(src).subarray(0, MiB));
    const s = await cli(['compare', vol, short]);
    expect(s.code).toBe(1);
    expect(s.stdout).toMatch(/Sizes differ/);
    // errors
    const missing = await cli(['compare', vol, join(dir, 'missing.img')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^stratadisk: not-found: /);
    const noSnap = await cli(['compare', vol, `${vol}@nope`]);
    expect(noSnap.code).toBe(2);
    expect(noSnap.stderr).toMatch(/No snapshot named "nope"/);
  });

  it('finds a difference in the last byte', async () => {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    const buf = Buffer.from(pattern(9 * MiB + 7, 3));
    writeFileSync(a, buf);
    buf[buf.length - 1]! ^= 1;
    writeFileSync(b, buf);
    const r = await cli(['compare', a, b]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`offset ${buf.length - 1} `);
  });
});

const qemuImg = spawnSync('sh', ['-c', 'command -v qemu-img']).status === 0;

describe('qemu-img interop', () => {
  it.skipIf(!qemuImg)('qemu-img compare agrees that an export equals its source (skipped: qemu-img not installed)', async () => {
    const { vol, src } = await volumeWithData();
    const out = join(dir, 'out.img');
    await ok(['export', vol, out]);
    execFileSync('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', out, src]);
    // and qemu-img map sees the same data extents as our map
    const theirs = JSON.parse(execFileSync('qemu-img', ['map', '--output=json', '-f', 'raw', out], { encoding: 'utf8' })) as { start: number; length: number; data: boolean }[];
    const ours = JSON.parse(await ok(['map', vol, '--json'])) as { start: number; length: number; data: boolean }[];
    const dataBytes = (xs: { length: number; data: boolean }[]) => xs.filter((e) => e.data).reduce((n, e) => n + e.length, 0);
    // A file system may allocate in larger units than our blocks, never in fewer bytes.
    expect(dataBytes(theirs)).toBeGreaterThanOrEqual(dataBytes(ours));
    expect(theirs.reduce((n, e) => n + e.length, 0)).toBe(2 * MiB);
  });
});
