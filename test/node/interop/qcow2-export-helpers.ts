/** Shared by the qcow2 export tests: volumes with every kind of block, and qemu-img as the judge. */
import { execFileSync, spawnSync } from 'node:child_process';
import { expect } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { ok, pattern } from '../cli/harness.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

export function qemuImgAvailable(): boolean {
  return spawnSync('qemu-img', ['--version']).status === 0;
}

export function qemuImg(args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8', maxBuffer: 256 << 20 });
}

/** `qemu-img check`: exit 0, "No errors were found", and (JSON) no corruptions and no leaks. */
export function expectCheckClean(file: string): void {
  const r = spawnSync('qemu-img', ['check', '-f', 'qcow2', file], { encoding: 'utf8' });
  expect(r.status, `${file}: ${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).toContain('No errors were found');
  const j = JSON.parse(qemuImg(['check', '-f', 'qcow2', '--output=json', file])) as Record<string, number | undefined>;
  expect(j['corruptions'] ?? 0, JSON.stringify(j)).toBe(0);
  expect(j['leaks'] ?? 0, JSON.stringify(j)).toBe(0);
  expect(j['check-errors'] ?? 0, JSON.stringify(j)).toBe(0);
}

/**
 * `qemu-img compare` exits 0 with "Images are identical", and the virtual sizes are equal.
 * (Not strict mode: that also compares allocation, and a sparse raw file has none to compare.)
 */
export function expectIdentical(qcow2: string, raw: string): void {
  const size = (f: string, fmt: string) => (JSON.parse(qemuImg(['info', '-f', fmt, '--output=json', f])) as { 'virtual-size': number })['virtual-size'];
  expect(size(qcow2, 'qcow2')).toBe(size(raw, 'raw'));
  const r = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', qcow2, raw], { encoding: 'utf8' });
  expect(r.status, `${qcow2} vs ${raw}: ${r.stdout}${r.stderr}`).toBe(0);
  expect(r.stdout).toContain('Images are identical');
}

export interface MapEntry {
  start: number;
  length: number;
  depth: number;
  present?: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
}

export function qemuMap(file: string): MapEntry[] {
  return JSON.parse(qemuImg(['map', '-f', 'qcow2', '--output=json', file])) as MapEntry[];
}

/** What qemu-img map says about the byte at `at`. */
export function mapAt(map: readonly MapEntry[], at: number): MapEntry {
  const e = map.find((m) => m.start <= at && at < m.start + m.length);
  if (!e) throw new Error(`no map entry at ${at}`);
  return e;
}

export async function rawExport(spec: string, file: string): Promise<void> {
  await ok(['export', spec, file, '--format', 'raw']);
}

/**
 * A volume with three snapshots and a live layer, holding data, known-zero blocks written over
 * data of a lower layer, partial-block writes and unallocated gaps.
 */
export async function buildVolume(dir: string, blockSize: number, size: number): Promise<Volume> {
  const v = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size, blockSize });
  const bs = blockSize;
  // s1: a run of data, a partial block, data at the very end (the last block is partial when size is odd).
  await v.write(0, pattern(3 * bs, 1));
  await v.write(5 * bs + 100, pattern(bs / 2, 2));
  await v.write(10 * bs, pattern(4 * bs, 3));
  await v.write(size - 700, pattern(700, 4));
  await v.snapshot('s1');
  // s2: zeros over s1's data (masks it), new data in a gap, zeros over nothing.
  await v.writeZeroes(bs, bs);
  await v.writeZeroes(11 * bs, 2 * bs);
  await v.write(7 * bs, pattern(bs, 5));
  await v.writeZeroes(20 * bs, 3 * bs);
  await v.snapshot('s2');
  // s3: overwrite zeros with data, more zeros over data.
  await v.write(11 * bs, pattern(bs, 6));
  await v.writeZeroes(0, bs);
  await v.write(16 * bs + 3, pattern(2 * bs, 7));
  await v.snapshot('s3');
  // live: a little of everything again.
  await v.writeZeroes(7 * bs, bs);
  await v.write(25 * bs, pattern(bs, 8));
  await v.flush();
  return v;
}
