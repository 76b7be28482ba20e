/**
 * `journal import` of logs written by QEMU's blklogwrites (issue 16 item 6): qemu-io runs one
 * seeded operation (write, write -z, discard) and a flush per run through blklogwrites; the image
 * is copied after each run. The log is then imported onto a journaled volume holding the start
 * state: entry N must become record N, and the view at the last flush entry of each run must
 * equal the image QEMU produced then, byte for byte. Skips (reason in the name) without qemu.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importDmLog } from '../../../src/journal/dm-log.js';
import { enableJournal } from '../../../src/journal/open.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { NodeFileStore } from '../../../src/store/node-file.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';
import { haveQemu } from '../interop/fixtures/qemu.js';

const work = mkdtempSync(join(tmpdir(), 'stratadisk-dmimport-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const IMAGE = 1 << 20;

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0 || /error|failed|invalid/i.test(out)) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${out}`);
}

const qemu = haveQemu();

describe.skipIf(!qemu)(`journal import of QEMU blklogwrites logs${qemu ? '' : ' (skipped: qemu-img/qemu-io not installed; run .ci/setup-system.sh)'}`, () => {
  it('entry N becomes record N, and the view at each run\'s last flush entry is QEMU\'s image then', async () => {
    const image = join(work, 'disk.raw');
    const log = join(work, 'log.bin');
    run('qemu-img', ['create', '-q', '-f', 'raw', image, String(IMAGE)]);
    run('qemu-io', ['-f', 'raw', '-c', `write -P 0xaa 0 ${IMAGE / 2}`, image]);
    const start = new Uint8Array(readFileSync(image));
    writeFileSync(log, new Uint8Array(0));
    const rng = new Rng(0x1616);
    const states: Uint8Array[] = [];
    const lastFlush: number[] = [];
    for (let b = 0; b < 24; b++) {
      const len = 512 * (1 + rng.int(64));
      const off = 512 * rng.int((IMAGE - len) / 512);
      const kind = rng.int(6);
      const cmd = kind === 0 ? `write -z ${off} ${len}` : kind === 1 ? `discard ${off} ${len}` : `write -P 0x${(16 + b).toString(16)} ${off} ${len}`;
      const opts = b === 0 ? 'log-sector-size=512' : 'log-append=on';
      run('qemu-io', ['--image-opts', `driver=blklogwrites,file.driver=file,file.filename=${image},log.driver=file,log.filename=${log},${opts}`, '-c', cmd, '-c', 'flush']);
      copyFileSync(image, join(work, `state-${b}.raw`));
      states.push(new Uint8Array(readFileSync(join(work, `state-${b}.raw`))));
      const sb = readFileSync(log).subarray(0, 24);
      lastFlush.push(Number(new DataView(sb.buffer, sb.byteOffset).getBigUint64(16, true)) - 1);
    }
    const ns = new MemoryNamespace();
    const vol = await Volume.create(ns, { size: IMAGE, blockSize: 4096 });
    await vol.write(0, start);
    const journal = await enableJournal(vol, ns, '');
    const store = await NodeFileStore.open(log, { readOnly: true });
    const report = await importDmLog(journal, store);
    await store.close();
    expect(report.shifted).toEqual([]);
    expect(report.entries).toBe(lastFlush.at(-1)! + 1);
    for (let b = 0; b < states.length; b++) {
      const got = await journal.view(`seq:${lastFlush[b]}`).read(0, IMAGE);
      expect(Buffer.from(got).equals(Buffer.from(states[b]!)), `view at seq:${lastFlush[b]} (run ${b}) = QEMU's image`).toBe(true);
    }
    expect(Buffer.from(await vol.read(0, IMAGE)).equals(Buffer.from(states.at(-1)!))).toBe(true);
    await vol.close();
  });
});

describe('journal import refuses a log it cannot apply whole, changing nothing', () => {
  it('an entry past the end of the volume: out-of-range, no record, the volume as it was', async () => {
    const { DmLogWriter } = await import('../../../src/journal/dm-log-writes-writer.js');
    const { MemoryStore } = await import('../../../src/store/memory.js');
    const store = new MemoryStore();
    const w = await DmLogWriter.create(store);
    await w.write(0, new Uint8Array(4096).fill(5));
    await w.flush();
    await w.write(IMAGE, new Uint8Array(512).fill(6));
    await w.finish();
    const ns = new MemoryNamespace();
    const vol = await Volume.create(ns, { size: IMAGE, blockSize: 4096 });
    const journal = await enableJournal(vol, ns, '');
    await expect(importDmLog(journal, store)).rejects.toMatchObject({ code: 'out-of-range', message: expect.stringContaining('nothing was applied') });
    expect(journal.nextSeq).toBe(0);
    expect((await vol.read(0, 4096)).every((b) => b === 0)).toBe(true);
    await vol.close();
  });
});
