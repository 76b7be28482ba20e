/**
 * Verify-on-read of shadow copies: preserved data is served only after its diff-area record
 * matched its XXH3-64. A damaged byte in a diff area makes reads of that range fail with
 * 'checksum-mismatch' naming the copy and the range, in the writer's process, after a reopen,
 * for a passive reader and from the CLI; never wrong bytes.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { AREA_HEADER_BYTES, batchHeadBytes } from '../../../src/shadow/diff-area.js';
import { ShadowReader, ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { Rng, equalBytes } from '../helpers/random.js';
import { cli, ok, pattern, tempDir, KiB } from '../cli/harness.js';

const BS = 512;
const N = 64;

/** Copy 'a', then three writes, each group-committed by a flush: records of blocks 0..3, 10..11 and 20 in S000001.diff. */
async function setup() {
  const model = new Rng(4).bytes(BS * N);
  const volume = new MemoryStore(model.slice());
  const ns = new MemoryNamespace();
  const sv = await ShadowVolume.open(new MemoryStore(volume.backing), ns, { blockSize: BS });
  await sv.createShadow({ name: 'a' });
  const atA = model.slice();
  for (const [block, count] of [[0, 4], [10, 2], [20, 1]] as const) {
    await sv.write(block * BS, new Uint8Array(count * BS).fill(9));
    await sv.flush();
  }
  // byte offset of the second record's data (blocks 10, 11) in the diff area
  const second = AREA_HEADER_BYTES + batchHeadBytes(1) + 4 * BS + batchHeadBytes(1);
  return { volume, ns, sv, atA, second };
}

function flip(ns: MemoryNamespace, at: number): void {
  ns.files.get('S000001.diff')!.buf[at]! ^= 0x10;
}

async function expectMismatch(p: Promise<unknown>, range = '5120..6143'): Promise<void> {
  await expect(p).rejects.toMatchObject({ code: 'checksum-mismatch', message: expect.stringContaining(`Shadow copy a cannot be read at bytes ${range}: The data of record 2 of diff area S000001`) });
}

describe('shadow copies verify what they read from diff areas', () => {
  it('in the writer: a damaged byte fails reads of its record with checksum-mismatch; the rest reads exactly', async () => {
    const { sv, ns, atA, second } = await setup();
    flip(ns, second + BS + 100); // block 11
    await expectMismatch(sv.openShadow('a').read(10 * BS, BS), '5120..5631'); // block 10: its record's whole data is checked
    const copy = sv.openShadow('a');
    await expectMismatch(copy.read(0, BS * N));
    await expectMismatch(copy.read(11 * BS + 5, 10), '5632..6143'); // block 11 alone
    expect(equalBytes(await copy.read(0, 10 * BS), atA.subarray(0, 10 * BS))).toBe(true);
    expect(equalBytes(await copy.read(12 * BS, (N - 12) * BS), atA.subarray(12 * BS))).toBe(true);
    await expectMismatch(copy.read(0, BS * N)); // stays refused
    await sv.close();
  });

  it('any damaged data byte of any record: the read fails, never wrong bytes', async () => {
    const records = [[0, 4], [10, 2], [20, 1]] as const;
    let at = AREA_HEADER_BYTES;
    let cases = 0;
    for (const [block, count] of records) {
      const dataAt = at + batchHeadBytes(1);
      for (let i = 0; i < count * BS; i += 29) {
        const { sv, ns } = await setup();
        flip(ns, dataAt + i);
        const from = block * BS;
        await expect(sv.openShadow('a').read(0, BS * N), `byte ${i} of record at ${at}`).rejects.toMatchObject({
          code: 'checksum-mismatch',
          message: expect.stringContaining(`Shadow copy a cannot be read at bytes ${from}..${from + count * BS - 1}:`),
        });
        await sv.close();
        cases++;
      }
      at = dataAt + count * BS;
    }
    expect(cases).toBeGreaterThan(100);
  });

  it('after a reopen and for a passive reader in each mode', async () => {
    const { sv, ns, volume, second } = await setup();
    await sv.close();
    flip(ns, second);
    const again = await ShadowVolume.open(new MemoryStore(volume.backing), ns);
    await expectMismatch(again.openShadow('a').read(0, BS * N));
    for (const mode of ['shared', 'message'] as const) {
      const ch = new MessageChannel();
      again.serve(ch.port1);
      const reader = await ShadowReader.connect(ch.port2, { copy: 'a', volume: new MemoryStore(volume.backing, { readOnly: true }), areas: new MemoryNamespace({ files: ns.files, readOnly: true }), mode, timeoutMs: 5000 });
      await expectMismatch(reader.read(0, BS * N));
      await reader.close();
      ch.port1.close();
      ch.port2.close();
    }
    await again.close();
  });

  it('a record published to a passive reader after it connected is verified too', async () => {
    const model = new Rng(5).bytes(BS * N);
    const volume = new MemoryStore(model.slice());
    const ns = new MemoryNamespace();
    const sv = await ShadowVolume.open(new MemoryStore(volume.backing), ns, { blockSize: BS, sharedMemory: false });
    await sv.createShadow({ name: 'a' });
    const atA = model.slice();
    const ch = new MessageChannel();
    sv.serve(ch.port1);
    const reader = await ShadowReader.connect(ch.port2, { copy: 'a', volume: new MemoryStore(volume.backing, { readOnly: true }), areas: new MemoryNamespace({ files: ns.files, readOnly: true }), mode: 'message', timeoutMs: 5000 });
    await sv.write(0, new Uint8Array(4 * BS).fill(1));
    await sv.flush(); // one group commit, one record
    await sv.write(10 * BS, new Uint8Array(2 * BS).fill(2));
    await sv.flush();
    expect(equalBytes(await reader.read(0, BS * N), atA)).toBe(true); // both records verified: fine
    await sv.write(30 * BS, new Uint8Array(BS).fill(3));
    await sv.flush();
    const third = AREA_HEADER_BYTES + 2 * batchHeadBytes(1) + 6 * BS + batchHeadBytes(1);
    flip(ns, third + 1);
    await expect(reader.read(30 * BS, BS)).rejects.toMatchObject({ code: 'checksum-mismatch', message: expect.stringMatching(/^Shadow copy a cannot be read at bytes 15360\.\.15871: .*record 3 of diff area S000001/) });
    await reader.close();
    ch.port1.close();
    ch.port2.close();
    await sv.close();
  });

  it('CLI: shadow export of a copy whose diff area has a flipped byte exits 2 with checksum-mismatch', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const vol = join(dir, 'disk.raw');
      writeFileSync(vol, pattern(256 * KiB, 7));
      await ok(['shadow', 'create', vol, '--name', 'a', '--block-size', '4K']);
      const patch = join(dir, 'patch.bin');
      writeFileSync(patch, pattern(8 * KiB, 8));
      await ok(['shadow', 'write', vol, patch, '--offset', '0']);
      await ok(['shadow', 'write', vol, patch, '--offset', '64K']);
      const shadows = `${vol}.shadows`;
      expect(readdirSync(shadows)).toContain('S000001.diff');
      const area = join(shadows, 'S000001.diff');
      const bytes = readFileSync(area);
      bytes[AREA_HEADER_BYTES + batchHeadBytes(1) + 100]! ^= 1; // first record: blocks 0..1
      writeFileSync(area, bytes);
      const r = await cli(['shadow', 'export', vol, 'a', join(dir, 'a.raw')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^stratadisk: checksum-mismatch: Shadow copy a cannot be read at bytes 0\.\.8191: /);
    } finally {
      cleanup();
    }
  });
});
