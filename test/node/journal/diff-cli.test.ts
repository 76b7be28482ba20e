/** `stratadisk diff` and `export --since`: the CLI, judged by qemu-img (compare, check, map). */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { enableJournal } from '../../../src/journal/open.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { openJournaled } from '../../../src/journal/open.js';
import { cli, ok, pattern, tempDir } from '../cli/harness.js';
import { expectCheckClean, qemuImgAvailable } from '../interop/qcow2-export-helpers.js';

const KiB = 1024;
const BS = 64 * KiB;
const SIZE = 64 * 1024 * KiB - 3 * 512;

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

/**
 * A journaled volume: data before the log, then marks a and b with partial writes, zeroes over
 * data, whole blocks and the partial last block between them, a snapshot s between, and live
 * writes after b.
 */
async function build(vol: string): Promise<void> {
  const ns = new NodeDirNamespace(vol, { create: true });
  const v = await Volume.create(ns, { size: SIZE, blockSize: BS });
  await v.write(0, pattern(20 * BS, 1));
  await v.snapshot('s0');
  await v.write(40 * BS, pattern(3 * BS, 2));
  const j = await enableJournal(v, ns, '');
  await v.write(100 * BS + 7, pattern(1000, 3));
  await j.mark('a');
  await v.write(3 * BS + 10, pattern(10, 4));
  await v.writeZeroes(5 * BS, 2 * BS);
  await v.write(200 * BS, pattern(4 * BS, 5));
  await v.write(SIZE - 300, pattern(300, 6));
  await v.snapshot('s');
  await v.write(41 * BS, pattern(BS, 7));
  await j.mark('b');
  await v.write(300 * BS, pattern(BS, 8));
  await v.writeZeroes(0, BS);
  await v.close();
}

/** The bytes of a point, read through the API (an independent judge of the exports). */
async function rawOf(vol: string, point: 'live' | { log: string } | { snapshot: string }, file: string): Promise<void> {
  const { volume, journal } = await openJournaled(new NodeDirNamespace(vol, { readOnly: true }), { readOnly: true });
  const r = point === 'live' ? volume : 'log' in point ? journal!.view(point.log) : volume.openSnapshot(point.snapshot);
  writeFileSync(file, await r.read(0, SIZE));
  await journal?.close();
  await volume.close();
}

function qemuCompare(a: string, fa: string, b: string, fb: string): { status: number | null; out: string } {
  const r = spawnSync('qemu-img', ['compare', '-f', fa, '-F', fb, a, b], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('stratadisk diff', () => {
  it('lists what differs between marks, snapshots, seqs and the live volume (every differing byte inside)', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    const points = ['v@mark:a', 'v@mark:b', 'v@s0', 'v@s', 'v', 'v@seq:0'];
    for (const x of points) await rawOf(vol, x === 'v' ? 'live' : x.includes(':') ? { log: x.slice(2) } : { snapshot: x.slice(2) }, join(dir, `${x.replace(/[@:]/g, '_')}.raw`));
    const raws = new Map(points.map((x) => [x, readFileSync(join(dir, `${x.replace(/[@:]/g, '_')}.raw`))]));
    for (const x of points) {
      for (const y of points) {
        const r = JSON.parse(await ok(['diff', join(dir, x), join(dir, y), '--json'])) as { extents: { offset: number; length: number }[]; basis: string; bytes: number; size: number };
        expect(r.size).toBe(SIZE);
        const bx = raws.get(x)!;
        const by = raws.get(y)!;
        let k = 0;
        for (let at = 0; at < SIZE; at += BS) {
          const end = Math.min(SIZE, at + BS);
          if (bx.subarray(at, end).equals(by.subarray(at, end))) continue;
          for (let i = at; i < end; i++) {
            if (bx[i] === by[i]) continue;
            while (k < r.extents.length && r.extents[k]!.offset + r.extents[k]!.length <= i) k++;
            const e = r.extents[k];
            if (!e || e.offset > i) throw new Error(`${x} vs ${y}: byte ${i} differs outside ${JSON.stringify(r.extents)}`);
          }
        }
        if (x === y) expect(r.extents).toEqual([]);
      }
    }
    // between the marks: exactly the blocks written between them
    const ab = JSON.parse(await ok(['diff', `${vol}@mark:a`, `${vol}@mark:b`, '--json'])) as { extents: unknown; basis: string };
    expect(ab.basis).toBe('log');
    expect(ab.extents).toEqual([
      { offset: 3 * BS, length: BS },
      { offset: 5 * BS, length: 2 * BS },
      { offset: 41 * BS, length: BS },
      { offset: 200 * BS, length: 4 * BS },
      { offset: 1023 * BS, length: SIZE - 1023 * BS },
    ]);
    const text = await ok(['diff', `${vol}@s0`, `${vol}@s`]);
    expect(text).toContain("from the layers' maps");
    expect(text).toMatch(/^ +OFFSET +LENGTH$/m);
  });

  it('refuses two volumes, log points without a log, bad points, with codes', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    await ok(['create', join(dir, 'w'), '--size', '1M']);
    const two = await cli(['diff', vol, join(dir, 'w')]);
    expect(two.code).toBe(2);
    expect(two.stderr).toContain('invalid-argument');
    expect(two.stderr).toContain('stratadisk compare');
    const nolog = await cli(['diff', `${join(dir, 'w')}@seq:1`, join(dir, 'w')]);
    expect(nolog.code).toBe(2);
    expect(nolog.stderr).toContain('not-found');
    const missing = await cli(['diff', join(dir, 'nope'), vol]);
    expect(missing.stderr).toContain('not-found');
    const bad = await cli(['diff', `${vol}@seq:x`, vol]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('invalid-argument');
    const nomark = await cli(['diff', `${vol}@mark:zz`, vol]);
    expect(nomark.stderr).toContain('not-found');
    const later = await cli(['diff', `${vol}@seq:99999`, vol]);
    expect(later.stderr).toContain('out-of-range');
  });
});

describe.skipIf(!qemuImgAvailable())('export --since: incremental qcow2, judged by qemu-img', () => {
  it('log points: the chain (incremental over the export of the older mark) compares identical to the full export and to the bytes', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    const a = join(dir, 'a.qcow2');
    const inc = join(dir, 'sub', 'b.inc.qcow2');
    const full = join(dir, 'b.full.qcow2');
    await ok(['export', `${vol}@mark:a`, a]);
    spawnSync('mkdir', [join(dir, 'sub')]);
    const out = await ok(['export', `${vol}@mark:b`, inc, '--since', 'mark:a', '--backing', a]);
    expect(out).toContain('backed by ../a.qcow2');
    await ok(['export', `${vol}@mark:b`, full]);
    await rawOf(vol, { log: 'mark:b' }, join(dir, 'b.raw'));
    await rawOf(vol, { log: 'mark:a' }, join(dir, 'a.raw'));
    expectCheckClean(inc);
    expectCheckClean(a);
    // the chain reads as the point, and as the full export
    for (const [x, fx] of [[full, 'qcow2'], [join(dir, 'b.raw'), 'raw']] as const) {
      const r = qemuCompare(inc, 'qcow2', x, fx);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toContain('Images are identical');
    }
    expect(qemuCompare(a, 'qcow2', join(dir, 'a.raw'), 'raw').status).toBe(0);
    // and it differs from the backing file alone (zeroes over data mask it)
    expect(qemuCompare(a, 'qcow2', join(dir, 'b.raw'), 'raw').status).toBe(1);
    // the incremental holds the changed blocks and qcow2 metadata only: 8 changed blocks of 64 KiB
    const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', inc], { encoding: 'utf8' }).stdout) as { 'backing-filename': string; 'virtual-size': number };
    expect(info['backing-filename']).toBe('../a.qcow2');
    const map = JSON.parse(spawnSync('qemu-img', ['map', '--output=json', inc], { encoding: 'utf8' }).stdout) as { start: number; length: number; depth: number; data: boolean; zero: boolean }[];
    const top = map.filter((m) => m.depth === 0).reduce((n, m) => n + m.length, 0);
    expect(top).toBe(3 * BS + BS + 4 * BS + (SIZE - 1023 * BS));
    expect(statSync(inc).size).toBeLessThan(6 * BS + 8 * BS);
  });

  it('snapshots and the live volume: an incremental over the export of a snapshot equals the full export', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    const s0 = join(dir, 's0.qcow2');
    await ok(['export', `${vol}@s0`, s0]);
    const inc = join(dir, 'live.inc.qcow2');
    await ok(['export', vol, inc, '--since', 's0', '--backing', s0]);
    const full = join(dir, 'live.qcow2');
    await ok(['export', vol, full]);
    expectCheckClean(inc);
    const r = qemuCompare(inc, 'qcow2', full, 'qcow2');
    expect(r.status, r.out).toBe(0);
    // a second step: s0 -> mark:b -> live
    const b = join(dir, 'b.inc.qcow2');
    await ok(['export', `${vol}@mark:b`, b, '--since', 's0', '--backing', s0]);
    const live2 = join(dir, 'live2.inc.qcow2');
    await ok(['export', vol, live2, '--since', 'mark:b', '--backing', b, '--cluster-size', '128K']);
    expectCheckClean(live2);
    const r2 = qemuCompare(live2, 'qcow2', full, 'qcow2');
    expect(r2.status, r2.out).toBe(0);
    // backwards: s0 over the export of s (blocks s0 never held must read as zeros, not as s's data)
    const s = join(dir, 's.qcow2');
    await ok(['export', `${vol}@s`, s]);
    const back = join(dir, 's0.inc.qcow2');
    await ok(['export', `${vol}@s0`, back, '--since', 's', '--backing', s]);
    const r3 = qemuCompare(back, 'qcow2', s0, 'qcow2');
    expect(r3.status, r3.out).toBe(0);
  });

  it('refuses an incremental without its backing, over an image of another size, or as raw', async () => {
    const vol = join(dir, 'v');
    await build(vol);
    const alone = await cli(['export', vol, join(dir, 'x.qcow2'), '--since', 's0']);
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('--backing');
    spawnSync('qemu-img', ['create', '-f', 'qcow2', join(dir, 'other.qcow2'), '1M']);
    const other = await cli(['export', vol, join(dir, 'x.qcow2'), '--since', 's0', '--backing', join(dir, 'other.qcow2')]);
    expect(other.code).toBe(2);
    expect(other.stderr).toContain('invalid-argument');
    const raw = await cli(['export', vol, join(dir, 'x.img'), '--since', 's0', '--backing', join(dir, 'other.qcow2')]);
    expect(raw.code).toBe(2);
    expect(raw.stderr).toContain('qcow2');
    const missing = await cli(['export', vol, join(dir, 'x.qcow2'), '--since', 's0', '--backing', join(dir, 'nope.qcow2')]);
    expect(missing.stderr).toContain('not-found');
    expect(spawnSync('ls', [dir], { encoding: 'utf8' }).stdout).not.toContain('x.');
  });
});
