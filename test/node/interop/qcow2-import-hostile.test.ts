/**
 * Hostile qcow2 corpus (issue 4, item 4): each image must end in a StrataError with a clear
 * code or a correct import, within time and memory bounds, and a volume that already holds data
 * and a snapshot must lose nothing.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importQcow2 } from '../../../src/interop/qcow2/import.js';
import { attempt, describeSeed, makeSeed, makeVictim, patched, victimCopy, victimIntact, write, type Seed } from './fixtures/hostile.js';
import { haveQemu, qemuImg, qemuIo, qemuToRaw, sameRaw } from './fixtures/qemu.js';
import { ok } from '../cli/harness.js';

const work = mkdtempSync(join(tmpdir(), 'stratadisk-qcow2-hostile-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const SIZE = 4 << 20;
const RSS_BOUND = 256 << 20;
let seed: Seed;
let victim: string;
let n = 0;

beforeAll(async () => {
  if (!haveQemu()) return;
  seed = makeSeed(work);
  victim = join(work, 'victim');
  await makeVictim(victim, SIZE);
});

/** Import `bytes` into a copy of the victim; returns the outcome after checking the victim is intact. */
async function run(bytes: Uint8Array | string, expectCodes?: string[]) {
  const image = typeof bytes === 'string' ? bytes : write(join(work, `case-${n}.qcow2`), bytes);
  const target = victimCopy(victim, join(work, `v-${n++}`));
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const out = await attempt(target, image);
  expect(performance.now() - t0).toBeLessThan(10_000);
  expect(process.memoryUsage().rss - rss0).toBeLessThan(RSS_BOUND);
  await victimIntact(target, SIZE);
  if (expectCodes) expect(out.ok ? 'ok' : out.code, out.ok ? '' : out.message).toSatisfy((c: string) => expectCodes.includes(c));
  if (out.ok) {
    // A success must equal qemu's reading of the same bytes.
    const ours = join(work, `ours-${n}.raw`);
    const theirs = join(work, `theirs-${n}.raw`);
    await ok(['export', target, ours]);
    expect(qemuToRaw(image, theirs)).toBe(true);
    expect(sameRaw(ours, theirs)).toBe(true);
  }
  rmSync(target, { recursive: true, force: true });
  return out;
}

describe.skipIf(!haveQemu())('hostile qcow2 images', () => {
  it('the seed itself imports into the victim', async () => {
    expect((await run(seed.bytes)).ok).toBe(true);
  });

  it('truncated at many points', async () => {
    const cuts = new Set([0, 3, 4, 8, 71, 72, 100, 103, 104, 111, 112, 200, 511, 4095, 4096]);
    for (let at = 4096; at < seed.bytes.length; at += 4096) cuts.add(at).add(at + 1).add(at - 8);
    cuts.add(seed.bytes.length - 1);
    for (const cut of cuts) {
      if (cut >= seed.bytes.length) continue;
      const out = await run(seed.bytes.subarray(0, cut));
      // A cut inside unused space may still leave a valid image; anything else must be refused.
      if (cut < seed.l2Offset + 4096) expect(out.ok, `cut at ${cut}`).toBe(false);
    }
  }, 120_000);

  it('absurd table sizes', async () => {
    await run(patched(seed.bytes, [[36, 4, 0xffffffff]]), ['corrupt']); // l1_size
    await run(patched(seed.bytes, [[36, 4, 0]]), ['corrupt']);
    await run(patched(seed.bytes, [[56, 4, 0xffffffff]]), ['corrupt']); // refcount_table_clusters
    await run(patched(seed.bytes, [[56, 4, 0]]), ['corrupt']);
    await run(patched(seed.bytes, [[24, 8, 0xffffffffffffffffn]]), ['corrupt', 'invalid-argument']); // size
    await run(patched(seed.bytes, [[24, 8, 1n << 50n]]), ['corrupt', 'invalid-argument']);
    await run(patched(seed.bytes, [[96, 4, 7]]), ['corrupt']); // refcount_order
    await run(patched(seed.bytes, [[100, 4, 0xfffffff8]]), ['corrupt']); // header_length
  });

  it('cluster_bits outside 9..21', async () => {
    for (const cb of [0, 8, 22, 31, 63, 0xffffffff]) await run(patched(seed.bytes, [[20, 4, cb]]), ['corrupt', 'unsupported']);
  });

  it('table offsets past the end, into the header, unaligned, overlapping', async () => {
    const end = seed.bytes.length;
    for (const [at, what] of [[40, 'L1'], [48, 'refcount']] as const) {
      for (const off of [0, 512, 4096 + 8, end, end + 4096, 1n << 55n, 0xffffffffffffffffn]) await run(patched(seed.bytes, [[at, 8, off]]), ['corrupt']);
      void what;
    }
    // L1 on the refcount table, refcount table on the L1 table
    await run(patched(seed.bytes, [[40, 8, seed.refcountOffset]]), ['corrupt']);
    await run(patched(seed.bytes, [[48, 8, seed.l1Offset]]), ['corrupt']);
    // L1 entry -> L2 past the end, in the header, on the L1 table, unaligned, reserved bits
    for (const l2 of [BigInt(end + 4096), 0n | (1n << 63n) | 512n, BigInt(seed.l1Offset), BigInt(seed.l2Offset + 8), BigInt(seed.l2Offset) | (1n << 60n)]) {
      await run(patched(seed.bytes, [[seed.l1Offset, 8, l2]]), ['corrupt']);
    }
    // L2 entry -> data past the end, into the header, unaligned, offset 0 with "copied"
    for (const d of [BigInt(end + 4096) | (1n << 63n), 4096n * 0n + (1n << 63n), 0x1000n + 0x200n, BigInt(end - 4096 + 512)]) {
      await run(patched(seed.bytes, [[seed.l2Offset, 8, d]]), ['corrupt']);
    }
  });

  it('unsupported features get a clear error', async () => {
    const cases: [number, 1 | 4 | 8, number | bigint, RegExp][] = [
      [32, 4, 1, /encrypted/],
      [32, 4, 2, /encrypted/],
      [72, 8, 1n << 2n, /external data/],
      [72, 8, 1n << 4n, /extended L2/],
      [72, 8, 1n << 40n, /incompatible features/],
      [4, 4, 1, /version 1/],
      [4, 4, 4, /version 4/],
    ];
    for (const [at, w, value, msg] of cases) {
      const out = await run(patched(seed.bytes, [[at, w, value]]), ['unsupported', 'corrupt']);
      expect(out.ok ? '' : out.message).toMatch(msg);
    }
    const zstd = join(work, 'zstd.qcow2');
    try {
      qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compression_type=zstd', zstd, '4M');
    } catch {
      return; // qemu built without zstd
    }
    const out = await run(describeSeed(zstd).bytes, ['unsupported']);
    expect(out.ok ? '' : out.message).toMatch(/zstd/);
  });

  it('compressed clusters that inflate past (or short of) the cluster size, or not at all', async () => {
    const cs = seed.clusterSize;
    const cases = [deflateRawSync(Buffer.alloc(cs * 64, 7)), deflateRawSync(Buffer.alloc(cs / 2, 7)), Buffer.from('not deflate data at all, just text'), deflateRawSync(Buffer.alloc(cs * 4096, 1))];
    for (const stream of cases) {
      const host = seed.bytes.length;
      const bytes = new Uint8Array(host + stream.length + 512);
      bytes.set(seed.bytes);
      bytes.set(stream, host);
      const x = 70n - 12n;
      const sectors = BigInt(Math.ceil(stream.length / 512));
      const desc = (1n << 62n) | BigInt(host) | (sectors << x);
      // guest cluster 5 of the active L2 table (unallocated in the seed)
      await run(patched(bytes, [[seed.l2Offset + 5 * 8, 8, desc]]), ['corrupt']);
    }
  });

  it('header extensions with absurd lengths, repeated or overlapping the backing name', async () => {
    const at = seed.headerLength;
    for (const len of [0xffffffff, 0x7fffffff, 4096, 4096 - at - 7]) {
      await run(patched(seed.bytes, [[at, 4, 0x12345678], [at + 4, 4, len]]), ['corrupt']);
      await run(patched(seed.bytes, [[at, 4, 0xe2792aca], [at + 4, 4, len]]), ['corrupt']);
      await run(patched(seed.bytes, [[at, 4, 0x6803f857], [at + 4, 4, len]]), ['corrupt']);
    }
    // a valid unknown extension is ignored
    const fine = await run(patched(seed.bytes, [[at, 4, 0x12345678], [at + 4, 4, 8], [at + 16, 4, 0], [at + 20, 4, 0]]));
    expect(fine.ok).toBe(true);
    // backing name: absurd length, past the cluster, into the header
    await run(patched(seed.bytes, [[8, 8, 600], [16, 4, 0xffffffff]]), ['corrupt']);
    await run(patched(seed.bytes, [[8, 8, 1n << 40n], [16, 4, 10]]), ['corrupt']);
    await run(patched(seed.bytes, [[8, 8, 8], [16, 4, 10]]), ['corrupt']);
  });

  it('snapshot tables with absurd counts and lengths', async () => {
    const v = new DataView(seed.bytes.buffer, seed.bytes.byteOffset);
    const st = Number(v.getBigUint64(64));
    expect(v.getUint32(60)).toBe(1);
    await run(patched(seed.bytes, [[60, 4, 0xffffffff]]), ['corrupt']);
    await run(patched(seed.bytes, [[60, 4, 65536]]), ['corrupt']);
    await run(patched(seed.bytes, [[64, 8, seed.bytes.length]]), ['corrupt']);
    await run(patched(seed.bytes, [[64, 8, 0]]), ['corrupt']);
    await run(patched(seed.bytes, [[st + 8, 4, 0xffffffff]]), ['corrupt']); // snapshot l1_size
    await run(patched(seed.bytes, [[st + 0, 8, seed.l1Offset]]), ['corrupt']); // snapshot L1 on the active L1
    await run(patched(seed.bytes, [[st + 12, 2, 0xffff]]), ['corrupt']); // id length
    await run(patched(seed.bytes, [[st + 14, 2, 0xffff]]), ['corrupt']); // name length
    await run(patched(seed.bytes, [[st + 36, 4, 0xffffffff]]), ['corrupt']); // extra data
    await run(patched(seed.bytes, [[st + 48, 8, 0xffffffffffffffffn]]), ['corrupt']); // snapshot size
  });

  it('backing chains that loop, name themselves, or escape the directory', async () => {
    const d = join(work, 'chains');
    const inner = join(d, 'inner');
    mkdirSync(inner, { recursive: true });
    const mk = (path: string, backing: string) => qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', backing, '-F', 'qcow2', path, '4M');
    // a -> b -> a
    mk(join(inner, 'a.qcow2'), 'b.qcow2');
    mk(join(inner, 'b.qcow2'), 'a.qcow2');
    expect((await run(join(inner, 'a.qcow2'), ['corrupt'])).ok).toBe(false);
    // self
    mk(join(inner, 'self.qcow2'), 'self.qcow2');
    const self = await run(join(inner, 'self.qcow2'), ['corrupt']);
    expect(self.ok ? '' : self.message).toMatch(/itself|loops/);
    // ../x and absolute paths outside, a symlink that points outside
    qemuImg('create', '-q', '-f', 'qcow2', join(d, 'outside.qcow2'), '4M');
    mk(join(inner, 'up.qcow2'), '../outside.qcow2');
    mk(join(inner, 'abs.qcow2'), join(d, 'outside.qcow2'));
    mk(join(inner, 'etc.qcow2'), '/etc/passwd');
    symlinkSync(join(d, 'outside.qcow2'), join(inner, 'link.qcow2'));
    mk(join(inner, 'vialink.qcow2'), 'link.qcow2');
    for (const name of ['up', 'abs', 'etc', 'vialink']) {
      const out = await run(join(inner, `${name}.qcow2`), ['invalid-argument']);
      expect(out.ok ? '' : out.message).toMatch(/outside/);
    }
    // ... allowed with allowDir
    const target = victimCopy(victim, join(work, `v-${n++}`));
    await importQcow2(target, join(inner, 'up.qcow2'), { allowDir: d });
    // missing backing file, non-local backing
    mk(join(inner, 'missing.qcow2'), 'nope.qcow2');
    await run(join(inner, 'missing.qcow2'), ['not-found']);
    mk(join(inner, 'nbd.qcow2'), 'nbd://localhost:10809/x');
    await run(join(inner, 'nbd.qcow2'), ['unsupported', 'invalid-argument']);
  });

  it('a deep chain is capped', async () => {
    const d = join(work, 'deep');
    mkdirSync(d);
    qemuImg('create', '-q', '-f', 'qcow2', join(d, 'i0.qcow2'), '4M');
    for (let i = 1; i <= 70; i++) qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', `i${i - 1}.qcow2`, '-F', 'qcow2', join(d, `i${i}.qcow2`), '4M');
    await run(join(d, 'i70.qcow2'), ['unsupported']);
  }, 60_000);

  it('not a qcow2 at all', async () => {
    await run(new Uint8Array(8192).fill(0x41), ['invalid-argument']);
  });

  it('a failure in cluster data mid-import leaves a new volume directory as it was', async () => {
    const cs = seed.clusterSize;
    const stream = Buffer.from('garbage, not deflate');
    const host = seed.bytes.length;
    const bytes = new Uint8Array(host + 512);
    bytes.set(seed.bytes);
    bytes.set(stream, host);
    const desc = (1n << 62n) | BigInt(host) | (0n << 58n);
    const image = write(join(work, 'midfail.qcow2'), patched(bytes, [[seed.l2Offset + 300 * 8, 8, desc]]));
    void cs;
    const fresh = join(work, 'fresh-mid');
    const out = await attempt(fresh, image);
    expect(out.ok).toBe(false);
    const { existsSync } = await import('node:fs');
    expect(existsSync(fresh)).toBe(false);
    qemuIo(seed.path, 'read 0 4k');
  });
});
