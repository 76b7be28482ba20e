/**
 * Mutation fuzzer over valid qcow2 images (issue 4, item 4). Each case flips bits, overwrites a
 * field with a boundary value, or truncates, then imports into a new directory. Every case must
 * end in a StrataError with a known code or an import; on a sample of cases that import, the
 * result must equal `qemu-img convert -O raw` of the same mutated file (when qemu accepts it).
 * A failed import must leave nothing behind. ~300 cases by default, 100,000 with STRATADISK_LONG=1.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ok } from '../cli/harness.js';
import { attempt, makeSeed, write, type Seed } from './fixtures/hostile.js';
import { haveQemu, qemuToRaw, sameRaw } from './fixtures/qemu.js';
import { prng } from '../../../src/bench/prng.js';

const LONG = process.env.STRATADISK_LONG === '1';
const CASES = LONG ? 100_000 : 300;
const COMPARE_EVERY = 50;
const work = mkdtempSync(join(tmpdir(), 'stratadisk-qcow2-fuzz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));


const BOUNDARY = [0n, 1n, 0x1ffn, 0x200n, 0xfffn, 0x1000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 1n << 55n, 1n << 62n, 1n << 63n, 0xffffffffffffffffn];

/** Mutate a copy of `s`: metadata areas get most of the attention. */
function mutate(s: Seed, rnd: () => number): { bytes: Uint8Array; what: string } {
  let bytes = s.bytes.slice();
  const v = new DataView(bytes.buffer);
  const st = Number(v.getBigUint64(64));
  const hot: [number, number][] = [
    [0, 112],
    [s.headerLength, 256],
    [s.l1Offset, 64],
    [s.l2Offset, s.clusterSize],
    [s.refcountOffset, 64],
  ];
  if (st > 0 && st < bytes.length) hot.push([st, 128]);
  const pick = (): number => {
    if (rnd() < 0.1) return Math.floor(rnd() * bytes.length);
    const [a, len] = hot[Math.floor(rnd() * hot.length)]!;
    return Math.min(bytes.length - 1, a + Math.floor(rnd() * len));
  };
  const ops = 1 + Math.floor(rnd() * 3);
  const what: string[] = [];
  for (let k = 0; k < ops; k++) {
    const r = rnd();
    if (r < 0.45) {
      const at = pick();
      const bit = Math.floor(rnd() * 8);
      bytes[at]! ^= 1 << bit;
      what.push(`flip ${at}.${bit}`);
    } else if (r < 0.8) {
      const width = rnd() < 0.5 ? 4 : 8;
      const at = Math.min(bytes.length - width, pick() & ~(width - 1));
      const pool = [...BOUNDARY, BigInt(bytes.length), BigInt(bytes.length - s.clusterSize), BigInt(s.l1Offset), BigInt(s.l2Offset), BigInt(s.refcountOffset)];
      const val = pool[Math.floor(rnd() * pool.length)]!;
      if (width === 4) v.setUint32(at, Number(val & 0xffffffffn));
      else v.setBigUint64(at, val);
      what.push(`set${width * 8} ${at}=${val}`);
    } else if (r < 0.9) {
      const at = pick();
      bytes[at] = Math.floor(rnd() * 256);
      what.push(`byte ${at}`);
    } else {
      const cut = Math.floor(rnd() * bytes.length);
      bytes = bytes.slice(0, cut);
      what.push(`truncate ${cut}`);
      break;
    }
  }
  return { bytes, what: what.join(', ') };
}

describe.skipIf(!haveQemu())('qcow2 mutation fuzzer', () => {
  it(`${CASES} seeded cases end in a coded error or a correct import`, async () => {
    const seeds = [makeSeed(work, 'v3.qcow2'), makeSeed(work, 'v2.qcow2', { compat: '0.10' })];
    const rnd = prng(0x5eed + (LONG ? 1 : 0));
    const stats = { imported: 0, refused: 0, compared: 0, qemuRefusedWeAccepted: 0, codes: {} as Record<string, number> };
    const rss0 = process.memoryUsage().rss;
    let peak = 0;
    for (let i = 0; i < CASES; i++) {
      const seed = seeds[i % seeds.length]!;
      const { bytes, what } = mutate(seed, rnd);
      const image = write(join(work, 'case.qcow2'), bytes);
      const target = join(work, `vol-${i}`);
      const t0 = performance.now();
      let out;
      try {
        out = await attempt(target, image);
      } catch (e) {
        throw new Error(`case ${i} (${what}): unexpected ${(e as Error).stack}`);
      }
      const ms = performance.now() - t0;
      if (ms > 10_000) throw new Error(`case ${i} (${what}) took ${ms} ms`);
      if (out.ok) {
        stats.imported++;
        if (stats.imported % COMPARE_EVERY === 1) {
          const theirs = join(work, 'theirs.raw');
          const ours = join(work, 'ours.raw');
          if (qemuToRaw(image, theirs)) {
            await ok(['export', target, ours]);
            expect(sameRaw(ours, theirs), `case ${i} (${what})`).toBe(true);
            stats.compared++;
          } else stats.qemuRefusedWeAccepted++;
        }
        rmSync(target, { recursive: true, force: true });
      } else {
        stats.refused++;
        stats.codes[out.code] = (stats.codes[out.code] ?? 0) + 1;
        expect(existsSync(target), `case ${i} (${what}) left ${target} behind`).toBe(false);
      }
      if (i % 100 === 0) peak = Math.max(peak, process.memoryUsage().rss - rss0);
      if (LONG && i % 5000 === 0) console.log(`qcow2 fuzz: ${i} cases`, JSON.stringify(stats));
    }
    console.log(`qcow2 fuzz: ${CASES} cases`, JSON.stringify(stats), `rss growth ${(peak / 2 ** 20).toFixed(0)} MiB`);
    expect(peak).toBeLessThan(512 << 20);
    expect(stats.compared).toBeGreaterThan(0);
  }, LONG ? 24 * 3600_000 : 120_000);
});
