import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MAGIC_OUT_OF_SYNC } from '../../../src/format/magic.js';
import { RECORD_HEADER, encodeRecord } from '../../../src/format/record.js';
import { PAGE_BITS } from '../../../src/replication/bitmap-pages.js';
import { OutOfSync } from '../../../src/replication/out-of-sync.js';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';
import { loadKernels } from '../../../src/wasm/index.js';

/**
 * Damaged out-of-sync bitmaps: every flipped byte, every truncation, and records with a valid
 * checksum but hostile contents (counts, page indices, lengths, geometry) give `corrupt` or the
 * state that was written, never another one (a wrong "clean" would let the secondary miss data),
 * and never an allocation sized by the file.
 */
const BS = 4096;
const BLOCKS = 3 * PAGE_BITS + 500;
const GEOMETRY = { size: BLOCKS * BS, blockSize: BS };

/** A bitmap with a raw page, a page of runs, an all-set page and appended records; closed cleanly. */
async function written(): Promise<{ ns: MemoryNamespace; runs: number[] }> {
  const ns = new MemoryNamespace();
  const oos = await OutOfSync.open(ns, 'f', GEOMETRY);
  const alt: number[] = [];
  for (let b = 1000; b < 4000; b += 2) alt.push(b, 1);
  oos.markRuns(alt);
  await oos.persist();
  oos.markRuns([PAGE_BITS + 5, 10, PAGE_BITS + 100, 1, 2 * PAGE_BITS, PAGE_BITS]);
  await oos.persist();
  oos.clearRuns([PAGE_BITS + 7, 2, 3 * PAGE_BITS + 499, 1]);
  oos.markRuns([3 * PAGE_BITS + 10, 3]);
  await oos.persist();
  const runs = oos.runs();
  await oos.close();
  return { ns, runs };
}

function clone(ns: MemoryNamespace): MemoryNamespace {
  const files = new Map<string, MemoryBacking>();
  for (const [name, b] of ns.files) files.set(name, new MemoryBacking(b.contents()));
  return new MemoryNamespace({ files });
}

/** The state a damaged copy opens to: its runs, or 'corrupt'. */
async function outcome(ns: MemoryNamespace): Promise<number[] | 'corrupt'> {
  try {
    const oos = await OutOfSync.open(ns, 'f', GEOMETRY);
    return oos.runs();
  } catch (e) {
    if (isStrataError(e, 'corrupt')) return 'corrupt';
    throw e;
  }
}

function header(epoch: number, logLength: number, dirty: number, seq: number, over: Partial<{ blockSize: number; size: number; pageBits: number }> = {}): Uint8Array {
  const p = new Uint8Array(40);
  const v = new DataView(p.buffer);
  v.setUint32(0, epoch, true);
  v.setUint32(4, over.blockSize ?? BS, true);
  v.setUint32(8, (over.size ?? GEOMETRY.size) % 2 ** 32, true);
  v.setUint32(12, Math.floor((over.size ?? GEOMETRY.size) / 2 ** 32), true);
  v.setUint32(16, over.pageBits ?? PAGE_BITS, true);
  v.setUint32(24, logLength % 2 ** 32, true);
  v.setUint32(28, Math.floor(logLength / 2 ** 32), true);
  v.setUint32(32, dirty, true);
  return encodeRecord({ magic: MAGIC_OUT_OF_SYNC, kind: 1, version: 1, seq, length: 40 }, p);
}

function pageRecord(epoch: number, page: number, enc: number, count: number, runs: number, data: Uint8Array): Uint8Array {
  const p = new Uint8Array(16 + data.length);
  const v = new DataView(p.buffer);
  v.setUint32(0, page, true);
  v.setUint16(4, enc, true);
  v.setUint32(8, count, true);
  v.setUint32(12, runs, true);
  p.set(data, 16);
  return encodeRecord({ magic: MAGIC_OUT_OF_SYNC, kind: 2, version: 1, seq: epoch, length: p.length }, p);
}

/** The current file, its newest header's epoch and log length (from the header slots). */
function current(ns: MemoryNamespace): { file: string; epoch: number; logLength: number; generation: number } {
  let best = { file: '', epoch: 0, logLength: 0, generation: -1 };
  for (const file of ['f.0', 'f.1']) {
    const b = ns.files.get(file)?.contents();
    if (!b) continue;
    for (const at of [0, 128]) {
      if (b.length < at + 72) continue;
      const v = new DataView(b.buffer, b.byteOffset + at);
      const generation = v.getUint32(8, true);
      if (v.getUint32(0, true) === MAGIC_OUT_OF_SYNC && generation > best.generation) {
        best = { file, epoch: v.getUint32(RECORD_HEADER, true), logLength: v.getUint32(RECORD_HEADER + 24, true), generation };
      }
    }
  }
  return best;
}

function put(ns: MemoryNamespace, file: string, at: number, bytes: Uint8Array): void {
  const old = ns.files.get(file)!.contents();
  const next = new Uint8Array(Math.max(old.length, at + bytes.length));
  next.set(old);
  next.set(bytes, at);
  ns.files.set(file, new MemoryBacking(next));
}

describe('OutOfSync damaged files', () => {
  it('every flipped byte gives corrupt or the state written, never another', async () => {
    await loadKernels();
    const { ns, runs } = await written();
    expect(runs.length).toBeGreaterThan(3000);
    let corrupted = 0, same = 0;
    for (const [file, backing] of ns.files) {
      const bytes = backing.contents();
      for (let at = 0; at < bytes.length; at += at < 512 ? 1 : 5) {
        const copy = clone(ns);
        const b = bytes.slice();
        b[at] ^= 1 << (at % 8);
        copy.files.set(file, new MemoryBacking(b));
        const got = await outcome(copy);
        if (got === 'corrupt') corrupted++;
        else {
          expect(got, `${file} byte ${at}`).toEqual(runs);
          same++;
        }
      }
    }
    // flips in the current log are detected; flips in one header slot fall back to the other (written equal at close)
    expect(corrupted).toBeGreaterThan(100);
    expect(same).toBeGreaterThan(100);
  }, 120_000);

  it('every truncation gives corrupt or the state written', async () => {
    const { ns, runs } = await written();
    for (const [file, backing] of ns.files) {
      const bytes = backing.contents();
      for (let len = 0; len < bytes.length; len += 37) {
        const copy = clone(ns);
        copy.files.set(file, new MemoryBacking(bytes.slice(0, len)));
        const got = await outcome(copy);
        if (got !== 'corrupt') expect(got, `${file} cut to ${len}`).toEqual(runs);
      }
    }
  });

  it('hostile headers and records with valid checksums are corrupt, and nothing is sized by them', async () => {
    const { ns } = await written();
    const c = current(ns);
    const cases: [string, (n: MemoryNamespace) => void][] = [
      ['a log longer than the file (2^50 bytes)', (n) => put(n, c.file, 0, header(c.epoch, 2 ** 50, 0, c.generation + 10))],
      ['a dirty count that does not add up', (n) => put(n, c.file, 0, header(c.epoch, c.logLength, 5, c.generation + 10))],
      ['more dirty blocks than the volume has', (n) => put(n, c.file, 0, header(c.epoch, c.logLength, BLOCKS + 1, c.generation + 10))],
      ['pages of another size', (n) => put(n, c.file, 0, header(c.epoch, c.logLength, 0, c.generation + 10, { pageBits: 4096 }))],
      ['a log shorter than its header area', (n) => put(n, c.file, 0, header(c.epoch, 100, 0, c.generation + 10))],
      ['another epoch', (n) => put(n, c.file, 0, header(c.epoch + 1, c.logLength, 0, c.generation + 10))],
    ];
    const appended = (rec: Uint8Array, dirty: number) => (n: MemoryNamespace) => {
      put(n, c.file, c.logLength, rec);
      put(n, c.file, 0, header(c.epoch, c.logLength + rec.length, dirty, c.generation + 10));
    };
    const runBytes = (pairs: number[]) => {
      const d = new Uint8Array(pairs.length * 2);
      const v = new DataView(d.buffer);
      pairs.forEach((x, i) => v.setUint16(i * 2, x, true));
      return d;
    };
    const pages = Math.ceil(BLOCKS / PAGE_BITS);
    cases.push(
      ['a page past the volume', appended(pageRecord(c.epoch, pages, 3, PAGE_BITS, 0, new Uint8Array(0)), 0)],
      ['a page index of 2^32-1', appended(pageRecord(c.epoch, 2 ** 32 - 1, 0, 0, 0, new Uint8Array(0)), 0)],
      ['a run count of 2^32-1', appended(pageRecord(c.epoch, 0, 1, 1, 2 ** 32 - 1, runBytes([0, 0])), 0)],
      ['runs out of order', appended(pageRecord(c.epoch, 0, 1, 2, 2, runBytes([10, 0, 5, 0])), 0)],
      ['a run past the volume', appended(pageRecord(c.epoch, pages - 1, 1, 600, 1, runBytes([0, 599])), 0)],
      ['a set count that does not match its runs', appended(pageRecord(c.epoch, 0, 1, 7, 1, runBytes([0, 0])), 0)],
      ['raw bits past the volume', appended(pageRecord(c.epoch, pages - 1, 2, 1, 0, (() => { const d = new Uint8Array(4096); d[4095] = 0x80; return d; })()), 0)],
      ['an unknown encoding', appended(pageRecord(c.epoch, 0, 9, 0, 0, new Uint8Array(0)), 0)],
      ['an "all set" page with a wrong count', appended(pageRecord(c.epoch, 0, 3, 5, 0, new Uint8Array(0)), 0)],
    );
    for (const [what, damage] of cases) {
      const copy = clone(ns);
      damage(copy);
      await expect(OutOfSync.open(copy, 'f', GEOMETRY), what).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining('full resync') });
    }
  });

  it('a header of a newer format version is unsupported, not read as clean', async () => {
    const { ns } = await written();
    const c = current(ns);
    const copy = clone(ns);
    const rec = header(c.epoch, c.logLength, 0, c.generation + 10);
    rec[6] = 2; // record version 2, checksum recomputed below
    const p = rec.subarray(RECORD_HEADER, RECORD_HEADER + 40).slice();
    put(copy, c.file, 0, encodeRecord({ magic: MAGIC_OUT_OF_SYNC, kind: 1, version: 2, seq: c.generation + 10, length: 40 }, p));
    await expect(OutOfSync.open(copy, 'f', GEOMETRY)).rejects.toMatchObject({ code: 'unsupported' });
  });

  it('files that hold bytes but no header are corrupt (never a new, clean bitmap)', async () => {
    const ns = new MemoryNamespace();
    ns.files.set('f.0', new MemoryBacking(new Uint8Array(300).fill(7)));
    await expect(OutOfSync.open(ns, 'f', GEOMETRY)).rejects.toMatchObject({ code: 'corrupt' });
    const { oos, reset } = await OutOfSync.openOrReset(ns, 'f', GEOMETRY);
    expect(reset).toContain('no valid header');
    expect(oos.runs()).toEqual([0, BLOCKS]);
  });
});
