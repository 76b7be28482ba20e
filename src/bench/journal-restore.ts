/**
 * Restore from the write log (issue 16, item 4): time to roll a journaled volume back to a mark
 * when 1%, 5% and 25% of its blocks changed since, against two ways to get the same point
 * without our index, in the same run:
 * - `qemu-img convert -O raw` of the point exported as qcow2 (the backup a user without the log
 *   would copy back: it writes the whole volume, whatever changed);
 * - replaying the dm-log-writes log from its start (the image the log began on) up to the mark:
 *   every logged write applied in order with pwrite, a datasync at each flush entry (what
 *   dm-log-writes' replay-log does; no such tool is installed here, so a loop over DmLogReader).
 * The volume (1 GiB, 64 MiB when quick, 64 KiB blocks) is written in full (the base state, the
 * whole disk random), marked `base`, then p% of its blocks rewritten (random 64 KiB writes); a
 * fresh volume for each p. Volume, log and images on Node files in one temporary directory.
 */
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtemp, open, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportQcow2View } from '../interop/qcow2/export-view.js';
import { exportDmLog } from '../journal/dm-log.js';
import { DmLogFlag, hasFlag } from '../journal/dm-log-writes-format.js';
import { DmLogReader } from '../journal/dm-log-writes-reader.js';
import type { Journal } from '../journal/journal.js';
import { enableJournal } from '../journal/open.js';
import { restoreTo } from '../journal/restore.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { NodeFileStore } from '../store/node-file.js';
import { Volume } from '../volume/volume.js';
import { prng } from './prng.js';
import { median, result, type BenchResult } from './result.js';

const MiB = 1 << 20;
const GiB = 1 << 30;
const BS = 64 * 1024;
export const JOURNAL_RESTORE_PERCENTS = [1, 5, 25] as const;

export const JOURNAL_RESTORE_ROWS = {
  convert: (p: number) => `journal: restore to a mark with ${p}% of blocks changed since vs qemu-img convert of the point exported from the log`,
  replay: (p: number) => `journal: restore to a mark with ${p}% of blocks changed since vs replaying the dm-log-writes log from its start`,
} as const;

/** `count` distinct random blocks of `total`, ascending. */
function pick(rnd: () => number, total: number, count: number): number[] {
  const s = new Set<number>();
  while (s.size < count) s.add(Math.floor(rnd() * total));
  return [...s].sort((a, b) => a - b);
}

/** A journaled volume in `dir` written in full (random), marked `base`. */
async function baseVolume(dir: string, size: number): Promise<{ v: Volume; j: Journal }> {
  const ns = new NodeDirNamespace(dir, { create: true });
  const v = await Volume.create(ns, { size, blockSize: BS });
  const j = await enableJournal(v, ns, '');
  const chunk = new Uint8Array(16 * MiB);
  for (let off = 0; off < size; off += chunk.length) {
    randomFillSync(chunk);
    await v.write(off, chunk.subarray(0, Math.min(chunk.length, size - off)));
  }
  await j.mark('base');
  return { v, j };
}

/** Rewrite `blocks` (ascending) with random data, one 64 KiB write each, as a guest would. */
async function change(v: Volume, blocks: readonly number[]): Promise<void> {
  const data = new Uint8Array(BS);
  for (const b of blocks) {
    randomFillSync(data);
    await v.write(b * BS, data);
  }
}

/**
 * Replay a dm-log-writes log onto the raw image `target` (holding the log's start state): each
 * write entry written at its offset, discards as zeros, a datasync at each flush entry and at
 * the end. Returns the bytes written.
 */
export async function replayDmLog(log: string, target: string): Promise<number> {
  const store = await NodeFileStore.open(log, { readOnly: true });
  const fd = await open(target, 'r+');
  let bytes = 0;
  try {
    const reader = await DmLogReader.open(store, { label: log });
    let scratch = new Uint8Array(0);
    for await (const batch of reader.batches()) {
      for (const e of batch.entries) {
        if (hasFlag(e, DmLogFlag.MARK)) continue;
        if (hasFlag(e, DmLogFlag.FLUSH) && e.length === 0) {
          await fd.datasync();
          continue;
        }
        if (e.length === 0) continue;
        let data: Uint8Array;
        if (hasFlag(e, DmLogFlag.DISCARD)) data = new Uint8Array(e.length);
        else if (batch.bytes) data = batch.bytes.subarray(e.dataOffset - batch.offset, e.dataOffset - batch.offset + e.length);
        else {
          if (scratch.length < e.length) scratch = new Uint8Array(e.length);
          data = scratch.subarray(0, e.length);
          await reader.readData(e, data);
        }
        for (let done = 0; done < data.length; ) done += (await fd.write(data, done, data.length - done, e.offset + done)).bytesWritten;
        bytes += e.length;
      }
    }
    await fd.datasync();
  } finally {
    await fd.close();
    await store.close();
  }
  return bytes;
}

/** Do 64 random blocks (and the first and last) of the raw image read as the view at mark `base`? */
async function sameAsView(j: Journal, raw: string, rnd: () => number, blocks: number): Promise<boolean> {
  const view = j.view('mark:base');
  const fd = await open(raw, 'r');
  try {
    const a = new Uint8Array(BS);
    const b = new Uint8Array(BS);
    for (const blk of [0, blocks - 1, ...pick(rnd, blocks, Math.min(64, blocks))]) {
      await view.readInto(blk * BS, a);
      await fd.read(b, 0, BS, blk * BS);
      if (Buffer.compare(a, b) !== 0) return false;
    }
    return true;
  } finally {
    await fd.close();
  }
}

export async function benchJournalRestore(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 64 * MiB : GiB;
  const blocks = size / BS;
  const root = await mkdtemp(join(tmpdir(), 'stratadisk-bench-jrestore-'));
  const out: BenchResult[] = [];
  const rnd = prng(4);
  try {
    // the peers, once: both produce the point `base` of the first volume from scratch
    let convertMs = Number.NaN;
    let replayMs = Number.NaN;
    let peerNote = '';
    let replayBytes = 0;
    let logBytes = 0;
    let replayCheck = '';
    let convertCheck = '';
    const rounds = quick ? 1 : 3;
    for (const [i, p] of JOURNAL_RESTORE_PERCENTS.entries()) {
      const dir = join(root, `vol-${p}`);
      const { v, j } = await baseVolume(dir, size);
      try {
        if (i === 0) {
          // (a) the point exported from the log as qcow2 (not timed), then qemu-img convert to raw
          const qcow = join(root, 'base.qcow2');
          await exportQcow2View(j.view('mark:base'), qcow);
          const times: number[] = [];
          for (let r = 0; r < rounds; r++) {
            const raw = join(root, 'convert.raw');
            await rm(raw, { force: true });
            const t = performance.now();
            const c = spawnSync('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', '-t', 'writeback', qcow, raw], { encoding: 'utf8' });
            const ms = performance.now() - t;
            if (c.error || c.status !== 0) {
              peerNote = `qemu-img convert not run: ${c.error ? c.error.message : `${c.stderr}`.trim()}`;
              break;
            }
            times.push(ms);
          }
          if (times.length > 0) {
            convertMs = median(times);
            convertCheck = (await sameAsView(j, join(root, 'convert.raw'), rnd, blocks)) ? '; the converted image matches the mark' : '; the converted image DIFFERS from the mark';
          }
          await rm(qcow, { force: true });
          await rm(join(root, 'convert.raw'), { force: true });
          // (b) the log from its start to the mark, as dm-log-writes (not timed), replayed onto
          // a raw image of the start state (the volume was empty when the log began: zeros)
          const log = join(root, 'base.dmlog');
          const store = await NodeFileStore.open(log, { create: true });
          try {
            const rep = await exportDmLog(j, store, { from: 'base', to: 'mark:base', sectorSize: 4096 });
            logBytes = rep.bytes;
          } finally {
            await store.close();
          }
          const rtimes: number[] = [];
          for (let r = 0; r < rounds; r++) {
            const raw = join(root, 'replay.raw');
            await writeFile(raw, new Uint8Array(0));
            await truncate(raw, size);
            const t = performance.now();
            replayBytes = await replayDmLog(log, raw);
            rtimes.push(performance.now() - t);
          }
          replayCheck = (await sameAsView(j, join(root, 'replay.raw'), rnd, blocks)) ? 'the replay matches the mark' : 'the replay DIFFERS from the mark';
          replayMs = median(rtimes);
          await rm(log, { force: true });
          await rm(join(root, 'replay.raw'), { force: true });
        }
        const changed = pick(rnd, blocks, Math.round((blocks * p) / 100));
        await change(v, changed);
        await v.flush();
        const t = performance.now();
        const rep = await restoreTo(j, 'mark:base');
        const ms = performance.now() - t;
        const ok = rep.blocks === changed.length;
        const mib = (rep.bytes / MiB).toFixed(1);
        const common = `${size / MiB} MiB volume, 64 KiB blocks, written in full then marked; ${p}% (${changed.length} blocks, ${((changed.length * BS) / MiB).toFixed(1)} MiB) rewritten by random 64 KiB writes; restore rewrote ${rep.blocks} blocks (${mib} MiB)${ok ? '' : ' (EXPECTED ' + changed.length + ')'} through the log, plus its two marks, flushed; ratio = time (lower is better)`;
        out.push(
          result(JOURNAL_RESTORE_ROWS.convert(p), ms, convertMs, 'ms', 'qemu-img convert -O raw of the qcow2 export of the mark (writes the whole volume)', undefined,
            `${common}; the peer copies the whole point (${size / MiB} MiB) to a new raw file (-t writeback: flushed at the end), median of ${rounds}, measured once for all rows${convertCheck}${peerNote ? `; ${peerNote}` : ''}`),
        );
        out.push(
          result(JOURNAL_RESTORE_ROWS.replay(p), ms, replayMs, 'ms', 'replay of the dm-log-writes log from its start to the mark onto a raw image (pwrite per entry, datasync per flush)', undefined,
            `${common}; the peer applies every logged write since the log began (${(replayBytes / MiB).toFixed(1)} MiB of entries, ${(logBytes / MiB).toFixed(1)} MiB exported), median of ${rounds}, measured once for all rows; ${replayCheck} (64 random blocks and the first and last)`),
        );
      } finally {
        await v.close();
        await rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return out;
}
