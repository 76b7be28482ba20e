/**
 * Interop with QEMU's blklogwrites driver (issue 16 item 6): qemu-io writes through
 * `driver=blklogwrites` a seeded script of writes (pattern, write -z, write -z -u, FUA writes),
 * discards and flushes, one qemu-io run per batch with `log-append=on`, each batch ending in a
 * flush; the image is copied after every run. Then our reader must parse QEMU's log, and a
 * replay of entries 0..N onto the start image must give:
 * - at the last flush entry of each batch (the super block's nr_entries after the run): the
 *   image QEMU produced, byte for byte (a real state, copied from disk);
 * - at every other flush entry (QEMU adds one after an emulated FUA write, and some runs log two):
 *   the script's reference model at that point (the model is itself checked against every real
 *   state above).
 * Also the other way: QEMU's log-append walks a log our writer made (it checks every entry's
 * flags and finds where to append from nr_entries and the layout) and appends to it; our reader
 * must then read both parts.
 *
 * Skips (with the reason in the name) when qemu-img/qemu-io are missing, like the other qemu
 * interop tests; .ci/setup-system.sh installs them in CI.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DmLogFlag, type DmLogEntry } from '../../../src/journal/dm-log-writes-format.js';
import { DmLogReader } from '../../../src/journal/dm-log-writes-reader.js';
import { DmLogWriter } from '../../../src/journal/dm-log-writes-writer.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { NodeFileStore } from '../../../src/store/node-file.js';
import { Rng } from '../helpers/random.js';
import { haveQemu } from '../interop/fixtures/qemu.js';
import { replay } from './dm-log-writes-helpers.js';

const work = mkdtempSync(join(tmpdir(), 'stratadisk-dmlog-qemu-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const IMAGE = 4 << 20;

type Op = { cmd: string; kind: 'write' | 'zero' | 'discard'; offset: number; length: number; pattern: number };

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0 || /error|failed|invalid/i.test(out)) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${out}`);
  return out;
}

/** A seeded batch of qemu-io commands; every offset and length a multiple of `align`. */
function batch(rng: Rng, align: number, discardAlign: number, size?: number): Op[] {
  const ops: Op[] = [];
  const n = size ?? rng.range(1, 7);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    const units = rng.pick([1, 1, 2, 3, 7, 8, 16, 64, 128, rng.range(1, 512)]);
    let length = Math.min(units * align, 256 << 10);
    let offset = rng.int((IMAGE - length) / align + 1) * align;
    const pattern = rng.range(1, 255);
    if (r < 0.45) ops.push({ cmd: `write -P ${pattern} ${offset} ${length}`, kind: 'write', offset, length, pattern });
    else if (r < 0.6) ops.push({ cmd: `write -f -P ${pattern} ${offset} ${length}`, kind: 'write', offset, length, pattern });
    else if (r < 0.72) ops.push({ cmd: `write -z ${offset} ${length}`, kind: 'zero', offset, length, pattern: 0 });
    else if (r < 0.8) ops.push({ cmd: `write -z -u ${offset} ${length}`, kind: 'zero', offset, length, pattern: 0 });
    else {
      length = Math.max(discardAlign, Math.floor(length / discardAlign) * discardAlign);
      offset = rng.int((IMAGE - length) / discardAlign + 1) * discardAlign;
      ops.push({ cmd: `discard ${offset} ${length}`, kind: 'discard', offset, length, pattern: 0 });
    }
  }
  return ops;
}

function apply(model: Uint8Array, op: Op): void {
  model.fill(op.kind === 'write' ? op.pattern : 0, op.offset, op.offset + op.length);
}

function claimed(log: string): number {
  const b = readFileSync(log);
  return b.length === 0 ? 0 : Number(b.readBigUInt64LE(16));
}

interface Setup {
  name: string;
  format: 'raw' | 'qcow2';
  logSectorSize: number;
  discardAlign: number;
  batches: number;
  seed: number;
  /** operations per qemu-io run (default 1 to 6) */
  opsPerRun?: number;
}

async function scenario(s: Setup): Promise<void> {
  const dir = mkdtempSync(join(work, `${s.name}-`));
  const image = join(dir, `disk.${s.format}`);
  const log = join(dir, 'log.bin');
  const start = new Uint8Array(IMAGE);
  run('qemu-img', ['create', '-q', '-f', s.format, image, String(IMAGE)]);
  // a start state that is not all zeros, written without the log
  run('qemu-io', ['-f', s.format, '-c', `write -P 0xaa 0 ${IMAGE / 2}`, '-c', `write -P 0x55 ${IMAGE / 2} ${IMAGE / 4}`, image]);
  start.fill(0xaa, 0, IMAGE / 2).fill(0x55, IMAGE / 2, (3 * IMAGE) / 4);
  writeFileSync(log, new Uint8Array(0));
  const file = s.format === 'raw' ? `file.driver=file,file.filename=${image}` : `file.driver=qcow2,file.file.driver=file,file.file.filename=${image}`;

  const rng = new Rng(s.seed);
  const ops: Op[] = [];
  const states: Uint8Array[] = [];
  const bounds: number[] = [];
  /** ops done after each run */
  const opsEnd: number[] = [];
  const model = start.slice();
  for (let b = 0; b < s.batches; b++) {
    const cmds = batch(rng, s.logSectorSize, s.discardAlign, s.opsPerRun);
    // the first run creates the log (log-sector-size), later runs append to it
    const opts = b === 0 ? `log-sector-size=${s.logSectorSize}` : 'log-append=on';
    const args = ['--image-opts', `driver=blklogwrites,${file},log.driver=file,log.filename=${log},${opts}`];
    for (const op of cmds) args.push('-c', op.cmd);
    args.push('-c', 'flush');
    run('qemu-io', args);
    for (const op of cmds) apply(model, op);
    ops.push(...cmds);
    opsEnd.push(ops.length);
    states.push(guestView(s.format, image, join(dir, `state-${b}.raw`)));
    bounds.push(claimed(log));
    expect(Buffer.from(states[b]!).equals(Buffer.from(model)), `model = QEMU's image after batch ${b}`).toBe(true);
  }

  const store = await NodeFileStore.open(log, { readOnly: true });
  try {
    const reader = await DmLogReader.open(store, { label: log });
    expect(reader.sectorSize).toBe(s.logSectorSize);
    expect(reader.claimedEntries).toBe(bounds.at(-1));
    expect(await reader.survey()).toMatchObject({ found: bounds.at(-1), stop: 'end-of-file', endOffset: store.size });

    const img = start.slice();
    const ref = start.slice();
    let applied = 0;
    let checkedReal = 0;
    let checkedModel = 0;
    const entries = await replay(reader, img, (e: DmLogEntry, now) => {
      expect([0, DmLogFlag.FLUSH, DmLogFlag.DISCARD]).toContain(e.flags);
      if (e.flags === DmLogFlag.FLUSH) {
        expect(e.nrSectors).toBe(0);
        // the run that logged this flush; a real image exists when it came after all of that
        // run's operations (the image after the run) or before any of them (the image before it)
        const k = bounds.findIndex((n) => e.index < n);
        const real = applied === opsEnd[k] ? states[k] : applied === (k === 0 ? 0 : opsEnd[k - 1]) ? (k === 0 ? start : states[k - 1]) : undefined;
        if (real) {
          expect(Buffer.from(now).equals(Buffer.from(real)), `replay at flush entry ${e.index} = QEMU's image around run ${k}`).toBe(true);
          checkedReal++;
        } else {
          expect(Buffer.from(now).equals(Buffer.from(ref)), `replay at flush entry ${e.index} = model after ${applied} ops`).toBe(true);
          checkedModel++;
        }
        return;
      }
      // one entry per operation, in order; write -z is a plain write of zeros
      const op = ops[applied++]!;
      expect({ offset: e.offset, length: e.length, discard: e.flags === DmLogFlag.DISCARD }).toEqual({ offset: op.offset, length: op.length, discard: op.kind === 'discard' });
      if (op.kind !== 'discard') {
        const data = now.subarray(e.offset, e.offset + e.length);
        expect(data.every((x) => x === op.pattern)).toBe(true);
      }
      apply(ref, op);
    });
    expect(applied).toBe(ops.length);
    expect(entries.length).toBe(bounds.at(-1));
    expect(checkedReal).toBeGreaterThanOrEqual(s.batches);
    if (s.opsPerRun === 1) expect(checkedModel).toBe(0);
    expect(Buffer.from(img).equals(Buffer.from(states.at(-1)!))).toBe(true);
    console.log(`dm-log-writes qemu ${s.name}: ${entries.length} entries, ${ops.length} ops, ${checkedReal} flush entries checked against QEMU's images, ${checkedModel} against the model only`);
  } finally {
    await store.close();
  }
}

function guestView(format: 'raw' | 'qcow2', image: string, out: string): Uint8Array {
  if (format === 'raw') copyFileSync(image, out);
  else run('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', image, out]);
  return new Uint8Array(readFileSync(out));
}

const qemu = haveQemu();

describe.skipIf(!qemu)(`dm-log-writes: logs written by QEMU's blklogwrites${qemu ? '' : ' (skipped: qemu-img/qemu-io not installed; run .ci/setup-system.sh)'}`, () => {
  it('raw image, 512-byte log sectors: every flush entry replays to QEMU\'s image', async () => {
    await scenario({ name: 'raw512', format: 'raw', logSectorSize: 512, discardAlign: 512, batches: 12, seed: 0x10a });
  });

  it('one operation per qemu-io run: every flush entry is checked against a real image', async () => {
    await scenario({ name: 'raw512-single', format: 'raw', logSectorSize: 512, discardAlign: 512, batches: 30, seed: 0x10d, opsPerRun: 1 });
  });

  it('raw image, 4096-byte log sectors', async () => {
    await scenario({ name: 'raw4k', format: 'raw', logSectorSize: 4096, discardAlign: 4096, batches: 6, seed: 0x10b });
  });

  it('qcow2 image under blklogwrites (discards of whole clusters)', async () => {
    await scenario({ name: 'qcow2', format: 'qcow2', logSectorSize: 512, discardAlign: 65536, batches: 6, seed: 0x10c });
  });

  it("QEMU's log-append walks a log our writer made and appends to it; we read both parts", async () => {
    const dir = mkdtempSync(join(work, 'append-'));
    const image = join(dir, 'disk.raw');
    const log = join(dir, 'log.bin');
    run('qemu-img', ['create', '-q', '-f', 'raw', image, String(IMAGE)]);
    const logStore = await NodeFileStore.open(log, { create: true });
    const w = await DmLogWriter.create(logStore);
    await w.write(0, new Uint8Array(4096).fill(0x11));
    await w.discard(8192, 4096);
    await w.mark('ours');
    await w.write(65536, new Uint8Array(1536).fill(0x12), DmLogFlag.FUA);
    await w.flush();
    await w.finish();
    await logStore.close();
    const ours = w.entries;
    run('qemu-io', ['--image-opts', `driver=blklogwrites,file.driver=file,file.filename=${image},log.driver=file,log.filename=${log},log-append=on`, '-c', 'write -P 0x33 1M 8k', '-c', 'flush']);
    const reader = await DmLogReader.open(new MemoryStore(new Uint8Array(readFileSync(log))));
    const all: DmLogEntry[] = [];
    for await (const e of reader.entries()) all.push(e);
    expect(all.slice(0, ours).map((e) => e.mark ?? e.flags)).toEqual([0, DmLogFlag.DISCARD, 'ours', DmLogFlag.FUA, DmLogFlag.FLUSH]);
    expect(all[ours]).toMatchObject({ index: ours, offset: 1 << 20, length: 8192, flags: 0 });
    expect(all[ours + 1]).toMatchObject({ flags: DmLogFlag.FLUSH });
    const data = new Uint8Array(8192);
    await reader.readData(all[ours]!, data);
    expect(data.every((x) => x === 0x33)).toBe(true);
  });

  it('a log file QEMU reused without log-append keeps the old entries behind the new ones: claimed mode reads only the new log', async () => {
    const dir = mkdtempSync(join(work, 'reuse-'));
    const image = join(dir, 'disk.raw');
    const log = join(dir, 'log.bin');
    run('qemu-img', ['create', '-q', '-f', 'raw', image, String(IMAGE)]);
    writeFileSync(log, new Uint8Array(0));
    const opts = `driver=blklogwrites,file.driver=file,file.filename=${image},log.driver=file,log.filename=${log}`;
    run('qemu-io', ['--image-opts', opts, '-c', 'write -P 1 0 512', '-c', 'write -P 2 512 512', '-c', 'flush', '-c', 'write -P 3 1024 512', '-c', 'flush']);
    // a new log over the old file: QEMU starts at the first entry again and does not truncate
    run('qemu-io', ['--image-opts', opts, '-c', 'write -P 4 0 512', '-c', 'write -P 5 512 512', '-c', 'flush']);
    const store = new MemoryStore(new Uint8Array(readFileSync(log)));
    const reader = await DmLogReader.open(store);
    expect(reader.claimedEntries).toBe(claimed(log));
    const got: DmLogEntry[] = [];
    for await (const e of reader.entries()) got.push(e);
    expect(got.filter((e) => e.flags === 0).map((e) => e.offset)).toEqual([0, 512]);
    expect(got.slice(2).every((e) => e.flags === DmLogFlag.FLUSH)).toBe(true);
    const survey = await reader.survey();
    expect(survey.found).toBeGreaterThan(reader.claimedEntries);
    // scan mode takes the older log's write at 1024 (pattern 3) for part of this one
    const scanned = await DmLogReader.open(store, { entries: 'scan' });
    const stale: DmLogEntry[] = [];
    for await (const e of scanned.entries()) stale.push(e);
    const old = stale.find((e) => e.flags === 0 && e.offset === 1024)!;
    expect(old.index).toBeGreaterThanOrEqual(reader.claimedEntries);
    const data = new Uint8Array(512);
    await scanned.readData(old, data);
    expect(data.every((x) => x === 3)).toBe(true);
  });
});
