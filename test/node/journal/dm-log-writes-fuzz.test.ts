/**
 * Hostile dm-log-writes files (issue 16 item 6, tests): mutations of valid logs — bit flips,
 * boundary values in the super block and entry fields, random bytes, truncation, spliced
 * entries — read in both modes, by entries, batches, readData and survey. Every case must end
 * in a result or a StrataError with code corrupt/unsupported/invalid-argument: never another
 * exception, never a read larger than the reader's chunk (nothing sized by a field), and what
 * parses must be consistent (entries contiguous, data inside the file). 2,000 cases in
 * `npm test`, 100,000 with STRATADISK_LONG=1.
 */
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { DmLogFlag, entryEnd } from '../../../src/journal/dm-log-writes-format.js';
import { DmLogReader } from '../../../src/journal/dm-log-writes-reader.js';
import { DmLogWriter } from '../../../src/journal/dm-log-writes-writer.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { Rng } from '../helpers/random.js';
import { CountingStore } from './dm-log-writes-helpers.js';

const LONG = process.env.STRATADISK_LONG === '1';
const CASES = LONG ? 100_000 : 2_000;
const CHUNK = 65536;

interface Seed {
  bytes: Uint8Array;
  ss: number;
  /** entry header offsets */
  headers: number[];
}

async function makeSeed(rng: Rng, ss: number, n: number, finish: boolean): Promise<Seed> {
  const store = new MemoryStore();
  const w = await DmLogWriter.create(store, { sectorSize: ss });
  const headers: number[] = [];
  for (let i = 0; i < n; i++) {
    headers.push(w.size);
    const r = rng.next();
    if (r < 0.5) await w.write(rng.int(4096) * ss, rng.bytes(ss * rng.pick([1, 2, 3, 8, 40, 140])), rng.pick([0, DmLogFlag.FUA, DmLogFlag.METADATA]));
    else if (r < 0.65) await w.discard(rng.int(4096) * ss, ss * rng.range(1, 5000));
    else if (r < 0.85) await w.flush();
    else await w.mark(`m${i}`);
  }
  if (finish) await w.finish({ endMark: rng.next() < 0.5 });
  else await w.sync();
  return { bytes: store.contents(), ss, headers };
}

const BOUNDARY = [0n, 1n, 2n, 0x1fn, 0x20n, 0x1ffn, 0x200n, 0x201n, 0xfffn, 0x1000n, 0x10000n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 1n << 53n, (1n << 53n) - 1n, 1n << 62n, 1n << 63n, 0xffffffffffffffffn];

function mutate(s: Seed, rng: Rng): { bytes: Uint8Array; what: string } {
  let bytes = s.bytes.slice();
  const hot = (): number => {
    if (rng.next() < 0.15) return rng.int(bytes.length);
    const base = rng.next() < 0.2 ? 0 : rng.pick(s.headers);
    return Math.min(bytes.length - 1, base + rng.int(rng.next() < 0.7 ? 40 : s.ss));
  };
  const what: string[] = [];
  const ops = 1 + rng.int(3);
  for (let k = 0; k < ops && bytes.length > 0; k++) {
    const r = rng.next();
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (r < 0.35) {
      const at = hot();
      const bit = rng.int(8);
      bytes[at]! ^= 1 << bit;
      what.push(`flip ${at}.${bit}`);
    } else if (r < 0.7) {
      const width = rng.next() < 0.6 ? 8 : 4;
      const at = Math.max(0, Math.min(bytes.length - width, hot() & ~(width - 1)));
      if (at + width > bytes.length) continue;
      const pool = [...BOUNDARY, BigInt(bytes.length), BigInt(bytes.length / s.ss), BigInt(s.headers.length), BigInt(s.headers.length + 1), BigInt(DmLogFlag.MARK), BigInt(DmLogFlag.DISCARD | DmLogFlag.FLUSH)];
      const val = rng.pick(pool);
      if (width === 4) v.setUint32(at, Number(val & 0xffffffffn), true);
      else v.setBigUint64(at, val, true);
      what.push(`set${width * 8} ${at}=${val}`);
    } else if (r < 0.8) {
      const at = hot();
      const n = 1 + rng.int(64);
      for (let i = at; i < Math.min(bytes.length, at + n); i++) bytes[i] = rng.int(256);
      what.push(`random ${at}+${n}`);
    } else if (r < 0.9) {
      // splice: one entry's header sector copied over another's
      const from = rng.pick(s.headers);
      const to = rng.pick(s.headers);
      if (from + s.ss <= bytes.length && to + s.ss <= bytes.length) bytes.copyWithin(to, from, from + s.ss);
      what.push(`splice ${from}->${to}`);
    } else {
      const cut = rng.next() < 0.5 ? rng.pick(s.headers) + rng.int(s.ss + 64) : rng.int(bytes.length);
      bytes = bytes.slice(0, Math.min(cut, bytes.length));
      what.push(`truncate ${cut}`);
      break;
    }
  }
  return { bytes, what: what.join(', ') };
}

const CODES = new Set(['corrupt', 'unsupported', 'invalid-argument']);

/** Read everything the reader offers; checks consistency on the way. */
async function exercise(bytes: Uint8Array, mode: 'claimed' | 'scan', rng: Rng, stats: Record<string, number>): Promise<void> {
  const store = new CountingStore(bytes);
  try {
    const reader = await DmLogReader.open(store, { entries: mode, chunkBytes: CHUNK });
    let next = reader.size === 0 ? 0 : reader.sectorSize;
    let index = 0;
    for await (const batch of reader.batches()) {
      for (const e of batch.entries) {
        expect(e.index).toBe(index++);
        expect(e.entryOffset).toBe(next);
        next = entryEnd(e);
        expect(next).toBeLessThanOrEqual(bytes.length);
        expect(Number.isSafeInteger(e.offset + e.length)).toBe(true);
        if (e.flags & (DmLogFlag.DISCARD | DmLogFlag.MARK)) expect(e.dataLength).toBe(0);
        else expect(e.dataLength).toBe(e.length);
        if (batch.bytes === null) {
          const piece = new Uint8Array(Math.min(e.dataLength, 4096));
          await reader.readData(e, piece, e.dataLength - piece.length);
        } else expect(e.dataOffset + e.dataLength - batch.offset).toBeLessThanOrEqual(batch.bytes.length);
      }
    }
    if (mode === 'claimed') expect(index).toBe(reader.claimedEntries);
    const survey = await reader.survey();
    expect(survey.found).toBeGreaterThanOrEqual(mode === 'scan' ? index : 0);
    if (mode === 'scan') expect(survey.found).toBe(index);
    // misuse of readData is invalid-argument, not a read
    const first = rng.next() < 0.1 ? undefined : null;
    if (first === undefined && index > 0) await reader.readData({ index: 0, entryOffset: 0, sector: 0, nrSectors: 0, flags: 0, offset: 0, length: 0, dataOffset: 0, dataLength: 0 }, new Uint8Array(1)).catch((e: unknown) => expect((e as StrataError).code).toBe('invalid-argument'));
    stats[`${mode}:ok`] = (stats[`${mode}:ok`] ?? 0) + 1;
  } catch (e) {
    if (!(e instanceof StrataError) || !CODES.has(e.code)) throw e;
    expect(e.message.length).toBeGreaterThan(20);
    stats[`${mode}:${e.code}`] = (stats[`${mode}:${e.code}`] ?? 0) + 1;
  }
  expect(store.largest).toBeLessThanOrEqual(CHUNK);
}

describe('dm-log-writes hostile-input fuzzer', () => {
  it(`${CASES} seeded mutations end in entries or a coded error`, { timeout: LONG ? 3_600_000 : 120_000 }, async () => {
    const rng = new Rng(0xd3106 + (LONG ? 1 : 0));
    const seeds = [
      await makeSeed(rng, 512, 40, true),
      await makeSeed(rng, 512, 25, false),
      await makeSeed(rng, 4096, 20, true),
      await makeSeed(rng, 1024, 12, true),
    ];
    const stats: Record<string, number> = {};
    for (let i = 0; i < CASES; i++) {
      const seed = seeds[i % seeds.length]!;
      const { bytes, what } = mutate(seed, rng);
      for (const mode of ['claimed', 'scan'] as const) {
        try {
          await exercise(bytes, mode, rng, stats);
        } catch (e) {
          throw new Error(`case ${i} (${mode}; seed ${i % seeds.length}; ${what}): ${(e as Error).stack}`);
        }
      }
    }
    console.log(`dm-log-writes fuzz: ${CASES} cases`, JSON.stringify(stats));
    // the fuzzer reached both outcomes in both modes
    for (const k of ['claimed:ok', 'claimed:corrupt', 'scan:ok', 'claimed:unsupported', 'claimed:invalid-argument']) expect(stats[k], k).toBeGreaterThan(0);
  });
});
