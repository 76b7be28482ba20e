/**
 * dm-log-writes codec (issue 16 item 6): our writer's logs read back by our reader, the layout
 * byte for byte where the kernel fixes it, and the reader's answers to truncated, unfinished
 * and damaged logs. The fuzzer is dm-log-writes-fuzz.test.ts; QEMU's logs dm-log-writes-qemu.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { DM_LOG_END_MARK, DmLogFlag, encodeSuper, type DmLogEntry } from '../../../src/journal/dm-log-writes-format.js';
import { DmLogReader } from '../../../src/journal/dm-log-writes-reader.js';
import { DmLogWriter } from '../../../src/journal/dm-log-writes-writer.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { Rng } from '../helpers/random.js';
import { CountingStore, fixedStore, replay } from './dm-log-writes-helpers.js';

type Op = { kind: 'write'; offset: number; data: Uint8Array; flags: number } | { kind: 'discard'; offset: number; length: number } | { kind: 'flush' } | { kind: 'mark'; label: string };

function script(rng: Rng, ss: number, n: number, deviceBytes: number): Op[] {
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < 0.55) {
      const sectors = rng.pick([1, 1, 2, 3, 8, 16, 64, rng.range(1, 600)]);
      const len = sectors * ss;
      const offset = rng.int(deviceBytes / ss - sectors) * ss;
      const flags = rng.pick([0, 0, 0, DmLogFlag.FUA, DmLogFlag.METADATA, DmLogFlag.FLUSH | DmLogFlag.FUA]);
      ops.push({ kind: 'write', offset, data: rng.bytes(len), flags });
    } else if (r < 0.7) {
      const sectors = rng.range(1, 300);
      ops.push({ kind: 'discard', offset: rng.int(deviceBytes / ss - sectors) * ss, length: sectors * ss });
    } else if (r < 0.9) ops.push({ kind: 'flush' });
    else ops.push({ kind: 'mark', label: `mark-${i}-é` });
  }
  return ops;
}

async function writeOps(w: DmLogWriter, ops: Op[]): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'write') await w.write(op.offset, op.data, op.flags);
    else if (op.kind === 'discard') await w.discard(op.offset, op.length);
    else if (op.kind === 'flush') await w.flush();
    else await w.mark(op.label);
  }
}

function applyOp(image: Uint8Array, op: Op): void {
  if (op.kind === 'write') image.set(op.data, op.offset);
  else if (op.kind === 'discard') image.fill(0, op.offset, op.offset + op.length);
}

async function collect(reader: DmLogReader): Promise<DmLogEntry[]> {
  const out: DmLogEntry[] = [];
  for await (const e of reader.entries()) out.push(e);
  return out;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    if (e instanceof StrataError) return e.code;
    throw e;
  }
}

async function messageOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return '';
  } catch (e) {
    return (e as Error).message;
  }
}

describe('dm-log-writes round trip', () => {
  for (const ss of [512, 4096]) {
    it(`writes, FUA, FLUSH with data, discards, flushes and marks read back (${ss}-byte sectors)`, async () => {
      const rng = new Rng(0xd1 + ss);
      const device = 8 << 20;
      const ops = script(rng, ss, 300, device);
      // one write larger than the writer's batch and the reader's chunk
      ops.push({ kind: 'write', offset: 0, data: rng.bytes(3 << 20), flags: 0 });
      ops.push({ kind: 'flush' });
      const store = new MemoryStore();
      const w = await DmLogWriter.create(store, { sectorSize: ss, batchBytes: 256 << 10 });
      await writeOps(w, ops);
      await w.finish();
      expect(w.entries).toBe(ops.length);
      expect(store.size).toBe(w.size);

      const reader = await DmLogReader.open(store, { chunkBytes: 1 << 20 });
      expect(reader.sectorSize).toBe(ss);
      expect(reader.claimedEntries).toBe(ops.length);
      const entries = await collect(reader);
      expect(entries.map((e) => e.index)).toEqual(ops.map((_, i) => i));
      let expectOffset = ss;
      for (const [i, e] of entries.entries()) {
        const op = ops[i]!;
        expect(e.entryOffset).toBe(expectOffset);
        expectOffset = e.dataOffset + e.dataLength;
        if (op.kind === 'write') {
          expect(e).toMatchObject({ flags: op.flags, offset: op.offset, length: op.data.length, dataLength: op.data.length, sector: op.offset / ss, nrSectors: op.data.length / ss });
          const got = new Uint8Array(e.dataLength);
          await reader.readData(e, got);
          expect(Buffer.from(got).equals(Buffer.from(op.data))).toBe(true);
        } else if (op.kind === 'discard') expect(e).toMatchObject({ flags: DmLogFlag.DISCARD, offset: op.offset, length: op.length, dataLength: 0 });
        else if (op.kind === 'flush') expect(e).toMatchObject({ flags: DmLogFlag.FLUSH, nrSectors: 0, dataLength: 0 });
        else expect(e).toMatchObject({ flags: DmLogFlag.MARK, mark: op.label, nrSectors: 0, dataLength: 0 });
      }
      expect(expectOffset).toBe(store.size);

      // replay by batches equals the ops applied in order, at every entry
      const model = new Uint8Array(device);
      const image = new Uint8Array(device);
      let k = 0;
      await replay(await DmLogReader.open(store), image, (e, img) => {
        applyOp(model, ops[k++]!);
        if (e.flags & DmLogFlag.FLUSH) expect(Buffer.from(img).equals(Buffer.from(model))).toBe(true);
      });
      expect(k).toBe(ops.length);
      expect(Buffer.from(image).equals(Buffer.from(model))).toBe(true);

      const survey = await reader.survey();
      expect(survey).toEqual({ claimed: ops.length, found: ops.length, endOffset: store.size, stop: 'end-of-file' });
    });
  }

  it('lays out the super block and entries as the kernel does', async () => {
    const store = new MemoryStore();
    const w = await DmLogWriter.create(store);
    await w.write(4096, new Uint8Array(1024).fill(0x5a), DmLogFlag.FUA);
    await w.mark('ab');
    await w.discard(1 << 20, 8192);
    await w.finish({ endMark: true });
    const b = Buffer.from(store.contents());
    expect(b.subarray(0, 8).toString('latin1')).toBe('rhswfsj\0');
    expect(b.readBigUInt64LE(8)).toBe(1n);
    expect(b.readBigUInt64LE(16)).toBe(4n);
    expect(b.readUInt32LE(24)).toBe(512);
    expect(b.subarray(28, 512).every((x) => x === 0)).toBe(true);
    // entry 0: sector 8, 2 sectors, FUA, data_len 0, then 1024 bytes of data
    expect([b.readBigUInt64LE(512), b.readBigUInt64LE(520), b.readBigUInt64LE(528), b.readBigUInt64LE(536)]).toEqual([8n, 2n, 2n, 0n]);
    expect(b.subarray(1024, 2048).every((x) => x === 0x5a)).toBe(true);
    // entry 1: mark "ab": data_len 2, label right after the header, then zeros
    expect([b.readBigUInt64LE(2048 + 8), b.readBigUInt64LE(2048 + 16), b.readBigUInt64LE(2048 + 24)]).toEqual([0n, 8n, 2n]);
    expect(b.subarray(2048 + 32, 2048 + 35).toString('latin1')).toBe('ab\0');
    // entry 2: discard, no data after it; entry 3: the kernel's end mark
    expect([b.readBigUInt64LE(2560), b.readBigUInt64LE(2568), b.readBigUInt64LE(2576)]).toEqual([2048n, 16n, 4n]);
    expect(b.subarray(3072 + 32, 3072 + 32 + DM_LOG_END_MARK.length).toString()).toBe(DM_LOG_END_MARK);
    expect(b.length).toBe(3584);
  });

  it('reads many small entries with few large reads', async () => {
    const store = new CountingStore();
    const w = await DmLogWriter.create(store);
    for (let i = 0; i < 2000; i++) await w.write(i * 4096, new Uint8Array(4096).fill(i & 0xff));
    await w.finish();
    store.reads = 0;
    const reader = await DmLogReader.open(store);
    let n = 0;
    for await (const batch of reader.batches()) {
      expect(batch.bytes).not.toBeNull();
      n += batch.entries.length;
    }
    expect(n).toBe(2000);
    // 2000 × 4.5 KiB = 8.8 MiB in 1 MiB chunks (+ the super block read)
    expect(store.reads).toBeLessThanOrEqual(12);
    expect(store.largest).toBeLessThanOrEqual(1 << 20);
  });

  it('an unfinished log: claimed entries only by default, every valid entry with scan', async () => {
    const store = new MemoryStore();
    const w = await DmLogWriter.create(store);
    await w.write(0, new Uint8Array(512).fill(1));
    await w.flush();
    await w.sync();
    await w.write(512, new Uint8Array(1024).fill(2));
    await w.mark('after-sync');
    // the writer stops here: no finish(); what it buffered is lost, so write it out by hand
    await (w as unknown as { drain(): Promise<void> }).drain();
    const claimed = await DmLogReader.open(store);
    expect(claimed.claimedEntries).toBe(2);
    expect((await collect(claimed)).length).toBe(2);
    expect(await claimed.survey()).toMatchObject({ claimed: 2, found: 4, stop: 'end-of-file' });
    const scan = await DmLogReader.open(store, { entries: 'scan' });
    expect((await collect(scan)).map((e) => e.mark ?? e.flags)).toEqual([0, DmLogFlag.FLUSH, 0, 'after-sync']);
  });

  it('syncOnFlush updates nr_entries at every flush entry, as QEMU does', async () => {
    const store = new MemoryStore();
    const w = await DmLogWriter.create(store, { syncOnFlush: true });
    await w.write(0, new Uint8Array(512));
    await w.flush();
    expect((await DmLogReader.open(new MemoryStore(store.contents()))).claimedEntries).toBe(2);
    await w.write(0, new Uint8Array(512));
    expect((await DmLogReader.open(new MemoryStore(store.contents()))).claimedEntries).toBe(2);
    await w.flush();
    expect((await DmLogReader.open(new MemoryStore(store.contents()))).claimedEntries).toBe(4);
  });

  it('a fixed-size store gets a zero sector after the last entry, so a scan stops there', async () => {
    const store = fixedStore(64 << 10);
    store.backing.buf.fill(0xee);
    const w = await DmLogWriter.create(store);
    await w.write(0, new Uint8Array(512).fill(3));
    await w.finish();
    expect(await (await DmLogReader.open(store, { entries: 'scan' })).survey()).toMatchObject({ found: 1, endOffset: 1536, stop: 'empty-entry' });
    expect((await collect(await DmLogReader.open(store))).length).toBe(1);
  });

  it('a zero-length file is an empty log (QEMU creates the log file before the first write)', async () => {
    const r = await DmLogReader.open(new MemoryStore());
    expect(r.claimedEntries).toBe(0);
    expect(await collect(r)).toEqual([]);
    expect(await r.survey()).toMatchObject({ found: 0, stop: 'end-of-file' });
  });
});

describe('dm-log-writes damaged logs', () => {
  async function sample(): Promise<Uint8Array> {
    const store = new MemoryStore();
    const w = await DmLogWriter.create(store);
    await w.write(0, new Uint8Array(2048).fill(7));
    await w.mark('m1');
    await w.discard(8192, 4096);
    await w.write(4096, new Uint8Array(1024).fill(8), DmLogFlag.FUA);
    await w.flush();
    await w.finish();
    return store.contents(); // entries at 512, 3072, 3584, 4096, 5632; size 6144
  }
  const put64 = (b: Uint8Array, at: number, v: bigint): Uint8Array => {
    const c = b.slice();
    new DataView(c.buffer).setBigUint64(at, v, true);
    return c;
  };

  it('a torn last entry: corrupt naming entry and offset; scan keeps the entries before it', async () => {
    const b = (await sample()).slice(0, 4096 + 512 + 100);
    const msg = await messageOf(collect(await DmLogReader.open(new MemoryStore(b), { label: 'log.bin', scanHint: '--scan' })));
    expect(msg).toMatch(/^log\.bin: the file ends inside entry 3 at byte 4096 .*claims 5 entries.* The 3 entries before it \(0\.\.2\) are intact: read them with --scan/);
    expect(await codeOf(collect(await DmLogReader.open(new MemoryStore(b))))).toBe('corrupt');
    const scan = await DmLogReader.open(new MemoryStore(b), { entries: 'scan' });
    expect((await collect(scan)).length).toBe(3);
    expect(await scan.survey()).toMatchObject({ claimed: 5, found: 3, endOffset: 4096, stop: 'torn-entry' });
  });

  it('nr_entries larger than the file can hold: corrupt at open, scan reads what is there', async () => {
    const b = put64(await sample(), 16, 1n << 62n);
    expect(await messageOf(DmLogReader.open(new MemoryStore(b)))).toMatch(/claims \d+ entries, but 6144 bytes hold at most 11 512-byte entries; .*entries 'scan'/);
    const scan = await DmLogReader.open(new MemoryStore(b), { entries: 'scan' });
    expect((await collect(scan)).length).toBe(5);
  });

  it('nr_entries one more than written: corrupt at the missing entry', async () => {
    const b = put64(await sample(), 16, 6n);
    expect(await messageOf(collect(await DmLogReader.open(new MemoryStore(b))))).toMatch(/the file ends before entry 5 at byte 6144, but the super block claims 6 entries/);
  });

  it.each([
    ['unknown flags', 512 + 16, 0x20n, /entry 0 at byte 512 is damaged: unknown flags 0x20/],
    ['huge nr_sectors', 512 + 8, 1n << 60n, /entry 0 .*beyond 2\^53/],
    ['nr_sectors past the file', 512 + 8, 100n, /file ends inside entry 0 .*run \d+ bytes past the end/],
    ['huge mark label', 3072 + 24, 1n << 40n, /entry 1 at byte 3072 is damaged: a mark label of 1099511627776 bytes/],
    ['mark label longer than its sector', 3072 + 24, 481n, /a mark label of 481 bytes \(at most 480/],
    ['mark with data', 3072 + 8, 1n, /a mark that claims 1 sectors/],
    ['data_len larger than the write', 512 + 24, 4096n, /data_len 4096 larger than its 4 sectors/],
    ['discard with data_len', 3584 + 24, 1n, /a discard with data_len 1/],
    ['nr_sectors zeroed (its data is then read as the next header)', 4096 + 8, 0n, /entry 4 at byte 4608 is damaged: unknown flags 0x808080808080808/],
  ] as const)('%s: corrupt with the entry index and offset', async (_name, at, value, re) => {
    const b = put64(await sample(), at, value);
    const err = await collect(await DmLogReader.open(new MemoryStore(b))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StrataError);
    expect((err as StrataError).code).toBe('corrupt');
    expect((err as StrataError).message).toMatch(re);
  });

  it('an all-zero header and a header with no flags and no sectors', async () => {
    const b = await sample();
    b.fill(0, 4096, 4608);
    expect(await messageOf(collect(await DmLogReader.open(new MemoryStore(b))))).toMatch(/entry 3 at byte 4096 is damaged: an all-zero entry/);
    expect(await (await DmLogReader.open(new MemoryStore(b), { entries: 'scan' })).survey()).toMatchObject({ found: 3, endOffset: 4096, stop: 'empty-entry' });
    b[4096 + 24] = 1;
    expect(await (await DmLogReader.open(new MemoryStore(b), { entries: 'scan' })).survey()).toMatchObject({ found: 3, stop: 'invalid-entry', detail: 'an entry with no flags and no sectors' });
  });

  it('padding that is not zero is damage', async () => {
    const b = await sample();
    b[512 + 40] = 1;
    expect(await messageOf(collect(await DmLogReader.open(new MemoryStore(b))))).toMatch(/entry 0 at byte 512 is damaged: a non-zero byte at 40/);
  });

  it('the super block: not a log, a version, a sector size, a truncated file', async () => {
    const b = await sample();
    expect(await codeOf(DmLogReader.open(new MemoryStore(put64(b, 0, 0x1234n))))).toBe('invalid-argument');
    expect(await messageOf(DmLogReader.open(new MemoryStore(put64(b, 8, 2n))))).toMatch(/version 2; only version 1/);
    expect(await codeOf(DmLogReader.open(new MemoryStore(put64(b, 8, 2n))))).toBe('unsupported');
    for (const ss of [0, 1, 32, 300, 513, 1 << 17, 0xffffffff]) {
      const c = b.slice();
      new DataView(c.buffer).setUint32(24, ss, true);
      expect(await codeOf(DmLogReader.open(new MemoryStore(c)))).toBe('unsupported');
    }
    expect(await codeOf(DmLogReader.open(new MemoryStore(b.slice(0, 20))))).toBe('corrupt');
    expect(await codeOf(DmLogReader.open(new MemoryStore(b.slice(0, 300))))).toBe('corrupt');
    // a 4096-byte sector size on a 6144-byte file built for 512: the entries do not parse
    const c = b.slice();
    new DataView(c.buffer).setUint32(24, 4096, true);
    expect(await codeOf(DmLogReader.open(new MemoryStore(c)).then(collect))).toBe('corrupt');
    const d = encodeSuper(512, 0);
    expect(await collect(await DmLogReader.open(new MemoryStore(d)))).toEqual([]);
  });
});

describe('dm-log-writes writer misuse', () => {
  it('refuses what no reader could read, with invalid-argument', async () => {
    const w = await DmLogWriter.create(new MemoryStore());
    expect(await codeOf(w.write(100, new Uint8Array(512)))).toBe('invalid-argument');
    expect(await codeOf(w.write(0, new Uint8Array(100)))).toBe('invalid-argument');
    expect(await codeOf(w.write(0, new Uint8Array(0)))).toBe('invalid-argument');
    expect(await codeOf(w.append({ flags: 0x40 }))).toBe('invalid-argument');
    expect(await codeOf(w.append({ flags: DmLogFlag.DISCARD, nrSectors: 1 }, new Uint8Array(512)))).toBe('invalid-argument');
    expect(await codeOf(w.append({ flags: DmLogFlag.MARK | DmLogFlag.FLUSH, mark: 'x' }))).toBe('invalid-argument');
    expect(await codeOf(w.mark('x'.repeat(480)))).toBe('invalid-argument');
    expect(await codeOf(w.mark('a\0b'))).toBe('invalid-argument');
    expect(await codeOf(w.append({ sector: 2 ** 53, nrSectors: 1 }, new Uint8Array(512)))).toBe('invalid-argument');
    expect(await codeOf(w.mark('x'.repeat(479)))).toBe('ok');
    await w.finish();
    expect(await codeOf(w.flush())).toBe('invalid-argument');
    expect(await codeOf(DmLogWriter.create(new MemoryStore(), { sectorSize: 8192 }))).toBe('invalid-argument');
    expect(await codeOf(DmLogWriter.create(fixedStore(512)))).toBe('out-of-range');
  });

  it('overlapping appends run in call order', async () => {
    const store = new MemoryStore();
    const w = await DmLogWriter.create(store, { batchBytes: 4096 });
    const ps: Promise<number>[] = [];
    for (let i = 0; i < 50; i++) ps.push(w.write(i * 512, new Uint8Array(512 * (1 + (i % 9))).fill(i)));
    expect(await Promise.all(ps)).toEqual([...Array(50).keys()]);
    await w.finish();
    const got = await collect(await DmLogReader.open(store));
    expect(got.map((e) => e.offset)).toEqual([...Array(50).keys()].map((i) => i * 512));
  });

  it('replaces an older, longer log instead of leaving its entries behind', async () => {
    const store = new MemoryStore();
    const w1 = await DmLogWriter.create(store);
    for (let i = 0; i < 10; i++) await w1.write(0, new Uint8Array(4096));
    await w1.finish();
    const w2 = await DmLogWriter.create(store);
    await w2.flush();
    await w2.finish();
    expect((await collect(await DmLogReader.open(store, { entries: 'scan' }))).length).toBe(1);
  });
});
