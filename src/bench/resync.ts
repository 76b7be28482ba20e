/**
 * Resync by segment checksums (group `resync`, issue 17 part 2), two raw files of 1 GiB (64 MiB
 * quick) with a seeded 1 % of their 1 MiB segments changed (one 4 KiB piece in each):
 * - bytes sent both ways vs the bytes of the changed segments (target ≤ 1.1×, lower is better);
 * - time of our resync vs `rsync --inplace --no-whole-file --ignore-times` on the same pair, as
 *   file bytes per second (target ≥ 1.0×: ours not slower);
 * - verify throughput: bytes of both sides hashed per second vs `xxhsum -H2` of both files (XXH128,
 *   the native anchor; informative);
 * - the volume case: the source is a stratadisk volume whose checksums are valid, so only the
 *   changed side is read and hashed; vs rsync on the raw pair.
 * Files in one temporary directory (page cache warm for both sides), paired rounds, removed after.
 */
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NodeDirNamespace } from '../store/node-dir.js';
import { NodeFileStore } from '../store/node-file.js';
import { resync, type ResyncResult } from '../resync/resync.js';
import { SegmentSums } from '../resync/segment-sums.js';
import { StoreSide, VolumeSide } from '../resync/side.js';
import { Volume } from '../volume/volume.js';
import { loadKernels } from '../wasm/index.js';
import { prng } from './prng.js';
import { pairedResult, runPairedRounds, type BenchResult } from './result.js';

const MiB = 1 << 20;
const SEG = MiB;
const PIECE = 4096;

export const RESYNC_ROWS = {
  bytes: 'resync: bytes sent for 1 % changed 1 MiB segments',
  time: 'resync: raw files, 1 % of segments changed, vs rsync',
  verify: 'resync --verify: both sides hashed',
  volume: 'resync: source volume with valid checksums, vs rsync',
} as const;

const run = promisify(execFile);

async function have(cmd: string, args: string[]): Promise<boolean> {
  try {
    await run(cmd, args);
    return true;
  } catch {
    return false;
  }
}

export async function benchResync(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 64 * MiB : 1024 * MiB;
  const rounds = quick ? 1 : 3;
  const count = size / SEG;
  const changed = Math.max(1, Math.round(count / 100));
  await loadKernels();
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-resync-'));
  const a = join(dir, 'a.raw');
  const b = join(dir, 'b.raw');
  const out: BenchResult[] = [];
  try {
    // a: random; b: a copy
    const chunk = new Uint8Array(16 * MiB);
    const fa = await open(a, 'w', 0o600);
    const fb = await open(b, 'w', 0o600);
    for (let o = 0; o < size; o += chunk.length) {
      randomFillSync(chunk);
      await fa.write(chunk, 0, chunk.length, o);
      await fb.write(chunk, 0, chunk.length, o);
    }
    await fa.close();
    await fb.close();
    // the changed segments: one 4 KiB piece each, at a seeded place
    const rnd = prng(17);
    const segs = new Set<number>();
    while (segs.size < changed) segs.add(Math.floor(rnd() * count));
    const pieces = [...segs].sort((x, y) => x - y).map((s) => ({ at: s * SEG + Math.floor((rnd() * (SEG - PIECE)) / PIECE) * PIECE, data: randomFillSync(new Uint8Array(PIECE)) }));
    const diverge = async (): Promise<void> => {
      const f = await open(b, 'r+');
      for (const p of pieces) await f.write(p.data, 0, PIECE, p.at);
      await f.close();
    };
    const changedBytes = changed * SEG;

    const ours = async (verify: boolean): Promise<{ secs: number; r: ResyncResult }> => {
      if (!verify) await diverge();
      const t0 = performance.now();
      const sa = await NodeFileStore.open(a, { readOnly: true, io: 'async' });
      const sb = await NodeFileStore.open(b, { readOnly: verify, io: 'async' });
      const r = await resync(new StoreSide(sa, a, 'a', SEG, false), new StoreSide(sb, b, 'b', SEG, !verify), { verify });
      await sa.close();
      await sb.close();
      return { secs: (performance.now() - t0) / 1000, r };
    };
    const rsync = async (): Promise<number> => {
      await diverge();
      const t0 = performance.now();
      await run('rsync', ['--inplace', '--no-whole-file', '--ignore-times', a, b]);
      return (performance.now() - t0) / 1000;
    };
    const xxhsum = async (): Promise<number> => {
      const t0 = performance.now();
      await run('xxhsum', ['-H2', a, b]);
      return (performance.now() - t0) / 1000;
    };
    const gbs = (bytes: number, secs: number): number => bytes / secs / 1e9;

    // warm the page cache for both files (and check that both sides agree on the changed set)
    const warm = await ours(true);
    await diverge();
    const check = await ours(true);
    if (check.r.segmentsDiffering !== changed) throw new Error(`resync bench: verify found ${check.r.segmentsDiffering} differing segments, expected ${changed}`);
    void warm;

    // (a) bytes sent
    const once = await ours(false);
    const sent = once.r.bytesSentSrcToDst + once.r.bytesSentDstToSrc;
    out.push({
      name: RESYNC_ROWS.bytes,
      ours: sent,
      peer: changedBytes,
      ratio: Math.round((sent / changedBytes) * 1000) / 1000,
      unit: 'bytes',
      peerName: "the changed segments' bytes",
      target: 1.1,
      met: sent <= 1.1 * changedBytes,
      note: `lower is better (ratio = sent / changed); ${changed} of ${count} segments changed; sent = data + 16 B per segment of checksums`,
    });

    // (b) time vs rsync
    const haveRsync = await have('rsync', ['--version']);
    if (haveRsync) {
      const [o, p] = await runPairedRounds([async () => gbs(size, (await ours(false)).secs), async () => gbs(size, await rsync())], rounds);
      out.push(pairedResult(RESYNC_ROWS.time, o!, p!, 'GB/s', 'rsync --inplace --no-whole-file --ignore-times', 1.0, `file bytes per second; ${size / MiB} MiB pair, ${changed} segments changed; ours flushes (fsyncs) the destination, rsync does not`));
    }

    // (c) verify throughput
    if (await have('xxhsum', ['--version'])) {
      await diverge();
      const [o, p] = await runPairedRounds([async () => gbs(2 * size, (await ours(true)).secs), async () => gbs(2 * size, await xxhsum())], rounds);
      out.push(pairedResult(RESYNC_ROWS.verify, o!, p!, 'GB/s', 'xxhsum -H2 (XXH128) of both files', undefined, 'bytes of both sides hashed per second; informative: the native anchor'));
    }

    // (d) the source is a volume whose checksums are valid: only the changed side is hashed
    if (haveRsync) {
      const vdir = join(dir, 'vol');
      const ns = new NodeDirNamespace(vdir, { create: true });
      const v = await Volume.create(ns, { size });
      const fa2 = await open(a, 'r');
      for (let o = 0; o < size; o += chunk.length) {
        await fa2.read(chunk, 0, chunk.length, o);
        await v.write(o, chunk);
      }
      await fa2.close();
      const sums = await SegmentSums.open(v, { segmentSize: SEG });
      await sums.refresh();
      await sums.close();
      await v.close();
      const ro = await Volume.open(new NodeDirNamespace(vdir, { readOnly: true }), { readOnly: true });
      const roSums = await SegmentSums.open(ro, { segmentSize: SEG });
      if (roSums.validCount !== count) throw new Error('resync bench: the volume\'s checksums are not all valid');
      let hashedSrc = -1;
      const fromVolume = async (): Promise<number> => {
        await diverge();
        const t0 = performance.now();
        const sb = await NodeFileStore.open(b, { io: 'async' });
        const r = await resync(new VolumeSide(ro, roSums), new StoreSide(sb, b, 'b', SEG, true));
        await sb.close();
        hashedSrc = r.bytesHashedSrc;
        return gbs(size, (performance.now() - t0) / 1000);
      };
      const [o, p] = await runPairedRounds([fromVolume, async () => gbs(size, await rsync())], rounds);
      await ro.close();
      out.push(pairedResult(RESYNC_ROWS.volume, o!, p!, 'GB/s', 'rsync --inplace --no-whole-file --ignore-times (raw pair)', 1.0, `file bytes per second; source bytes hashed: ${hashedSrc} (its valid checksums are used)`));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
