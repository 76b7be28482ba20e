/**
 * Changed-block tracking (issue 16, item 7):
 * - `diff` between two marks 1% of the volume apart on a sparse 64 GiB volume (4 GiB when
 *   quick), answered from the write log's index (and, as a second row, between snapshots taken
 *   at the marks, from the layer maps), vs `qemu-img compare` reading both points in full: the
 *   full export of the later point against the incremental chain of it (same content, so it
 *   reads every allocated cluster of both; it skips what both leave unallocated). `qemu-img
 *   compare` of two images that differ stops at the first difference; that time is in the note;
 * - the bytes of the incremental qcow2 export (`export --since`) vs the bytes that changed
 *   (target ≤ 1.05×: only the changed blocks plus qcow2 metadata).
 * Volume, log and images on Node files in one temporary directory, same run.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportQcow2View } from '../interop/qcow2/export-view.js';
import { blocksToExtents, diffBlocks } from '../journal/diff.js';
import { enableJournal, openJournaled } from '../journal/open.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { prng } from './prng.js';
import { median, result, type BenchResult } from './result.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const BS = 64 * 1024;

export const JOURNAL_DIFF_ROWS = {
  diff: 'journal: diff of two marks 1% apart (write log index) vs qemu-img compare of their exports',
  layers: 'journal: diff of two snapshots 1% apart (layer maps) vs qemu-img compare of their exports',
  incremental: 'journal: incremental qcow2 export (--since) bytes vs changed bytes',
} as const;

/** Write `blocks` (ascending block numbers) with distinct random data, 256 blocks per call. */
async function writeBlocks(v: Volume, blocks: readonly number[], data: Uint8Array): Promise<void> {
  const per = data.length / BS;
  for (let i = 0; i < blocks.length; i += per) {
    const part = blocks.slice(i, i + per);
    randomFillSync(data);
    await v.writeRanges(part.map((b) => ({ offset: b * BS, length: BS })), data.subarray(0, part.length * BS));
  }
}

/** `count` distinct random blocks of `total`, ascending. */
function pick(rnd: () => number, total: number, count: number): number[] {
  const s = new Set<number>();
  while (s.size < count) s.add(Math.floor(rnd() * total));
  return [...s].sort((a, b) => a - b);
}

export async function benchJournalDiff(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 4 * GiB : 64 * GiB;
  const blocks = size / BS;
  const onePct = Math.round(blocks / 100);
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-jdiff-'));
  const out: BenchResult[] = [];
  try {
    const ns = new NodeDirNamespace(join(dir, 'vol'), { create: true });
    const v = await Volume.create(ns, { size, blockSize: BS });
    const rnd = prng(16);
    const data = new Uint8Array(256 * BS);
    // 1% of data before the log begins, then mark a, 1% of the volume rewritten (random 64 KiB blocks), mark b
    await writeBlocks(v, pick(rnd, blocks, onePct), data);
    const j = await enableJournal(v, ns, '');
    await v.write(0, new Uint8Array(BS).fill(1));
    await j.mark('a');
    await v.snapshot('sa');
    const changed = pick(rnd, blocks, onePct);
    await writeBlocks(v, changed, data);
    await j.mark('b');
    await v.snapshot('sb');
    await v.close();
    const changedBytes = changed.length * BS;

    // ours: the diff, from a read-only open (as the CLI does; its open cost is noted)
    const t0 = performance.now();
    const ro = await openJournaled(new NodeDirNamespace(join(dir, 'vol'), { readOnly: true }), { readOnly: true });
    const openMs = performance.now() - t0;
    const journal = ro.journal!;
    const times: number[] = [];
    let found = 0;
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const d = diffBlocks(ro.volume, journal, { log: 'mark:a' }, { log: 'mark:b' });
      times.push(performance.now() - t);
      found = d.blocks.length;
    }
    const layerTimes: number[] = [];
    let layerFound = 0;
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const d = diffBlocks(ro.volume, journal, { snapshot: 'sa' }, { snapshot: 'sb' });
      layerTimes.push(performance.now() - t);
      layerFound = d.blocks.length;
    }
    // exports: full images of both points, and the incremental of b over a
    const a = join(dir, 'a.qcow2');
    const b = join(dir, 'b.qcow2');
    const inc = join(dir, 'b.inc.qcow2');
    await exportQcow2View(journal.view('mark:a'), a);
    await exportQcow2View(journal.view('mark:b'), b);
    const extents = blocksToExtents(diffBlocks(ro.volume, journal, { log: 'mark:a' }, { log: 'mark:b' }).blocks, BS, size);
    const incImg = await exportQcow2View(journal.view('mark:b'), inc, { changed: extents, backingFile: 'a.qcow2' });
    await journal.close();
    await ro.volume.close();

    // the peer: qemu-img compare reading both sides in full. Of a.qcow2 and b.qcow2 it stops at
    // the first difference (timed too, for the note); of b.qcow2 and the chain b.inc -> a (the
    // same content) it must read every allocated cluster of both, and it checks the chain.
    const timeCompare = (x: string, y: string): { ms: number; status: number | null; out: string; error?: Error } => {
      const t = performance.now();
      const r = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'qcow2', x, y], { encoding: 'utf8' });
      return { ms: performance.now() - t, status: r.status, out: `${r.stdout}${r.stderr}`, ...(r.error ? { error: r.error } : {}) };
    };
    const peerTimes: number[] = [];
    const firstTimes: number[] = [];
    let peerNote = '';
    let chainOk = true;
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      const full = timeCompare(inc, b);
      if (full.error) {
        peerNote = `qemu-img not run: ${full.error.message}`;
        chainOk = false;
        break;
      }
      if (full.status !== 0) {
        chainOk = false;
        peerNote = `the chain b.inc -> a did not compare identical to b: ${full.out.trim()}`;
      }
      peerTimes.push(full.ms);
      const first = timeCompare(a, b);
      if (first.status !== 1) peerNote = `qemu-img compare of a and b exited ${first.status} (expected 1: they differ)`;
      firstTimes.push(first.ms);
    }
    const oursMs = median(times);
    const peerMs = peerTimes.length === 0 ? Number.NaN : median(peerTimes);
    const firstMs = firstTimes.length === 0 ? Number.NaN : median(firstTimes);
    const peerName = 'qemu-img compare reading both points in full (the full export of b vs the chain b.inc -> a, same content)';
    out.push(result(JOURNAL_DIFF_ROWS.diff, oursMs, peerMs, 'ms', peerName, undefined,
      `${size / GiB} GiB volume, 64 KiB blocks, 1% (${onePct} blocks, ${(changedBytes / MiB).toFixed(0)} MiB) of data before the log and 1% rewritten between the marks (random distinct blocks, 256 per write); diff found ${found} blocks; ratio = time (lower is better), median of 5 diffs; opening the volume read-only with its log (the CLI's cost before the diff: building the index from the log) took ${openMs.toFixed(0)} ms; qemu-img compare of the full exports of a and b, which stops at the first difference and lists nothing, took ${firstMs.toFixed(0)} ms${peerNote ? `; ${peerNote}` : ''}`));
    out.push(result(JOURNAL_DIFF_ROWS.layers, median(layerTimes), peerMs, 'ms', peerName, undefined,
      `the same volume and points, as snapshots taken at the marks; diff found ${layerFound} blocks (the layer between them); ratio = time (lower is better), median of 5 diffs`));
    const fileBytes = (await stat(inc)).size;
    const r = result(JOURNAL_DIFF_ROWS.incremental, fileBytes, changedBytes, 'bytes', 'bytes of the blocks changed between the marks', undefined,
      `incremental image of mark b backed by the export of mark a: ${incImg.stats.dataClusters} data clusters of 64 KiB (${((incImg.stats.dataClusters * BS) / MiB).toFixed(1)} MiB), ${incImg.stats.metadataClusters} metadata clusters; qemu-img compare of the chain against the full export of b: ${chainOk ? 'identical' : `FAILED (${peerNote})`}; ratio = bytes (target ≤ 1.05)`);
    r.target = 1.05;
    r.met = r.ratio <= 1.05 && chainOk;
    out.push(r);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
