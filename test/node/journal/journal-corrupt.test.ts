import { describe, expect, it } from 'vitest';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { enableJournal, openJournaled } from '../../../src/journal/open.js';
import { WriteLog, segmentName } from '../../../src/journal/write-log.js';
import { KIND_FLUSH, KIND_WRITE, KIND_ZERO, type LogRecord } from '../../../src/journal/record.js';
import { isStrataError } from '../../../src/errors.js';
import { prng } from '../../../src/bench/prng.js';

/**
 * Damaged write logs: a torn tail is cut on open (and reported), damage before later durable
 * flushes is `corrupt` naming the record, a flipped data byte makes a view read fail with
 * `checksum-mismatch` (never wrong bytes), and a seeded fuzz of random mutations never gives a
 * non-StrataError, wrong bytes or a hang.
 */
const LONG = process.env.STRATADISK_LONG === '1';
const BS = 4096;
const BLOCKS = 8;
const SIZE = BS * BLOCKS;
const SEG = segmentName(1);
const LENGTHS = [1, 100, BS - 1, BS, BS + 7, 2 * BS];

interface Image {
  files: Map<string, Uint8Array>;
  /** exact states at flush points: log seq -> model */
  flushes: Map<number, Uint8Array>;
  marks: Map<string, Uint8Array>;
  final: Uint8Array;
  /** the model at the last flush (what the volume holds after a crash) */
  lastFlushed: Uint8Array;
  /** log bytes when the last flush completed */
  flushedLogBytes: number;
  records: { rec: LogRecord; pos: number; dataAt: number }[];
}

/** A journaled volume after a seeded sequential workload; `tail` writes after the last flush are left unflushed (no close). */
async function makeImage(seed: number, steps: number, tail: number): Promise<Image> {
  const rnd = prng(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const ns = new MemoryNamespace();
  const vol = await Volume.create(ns, { size: SIZE, blockSize: BS });
  const model = new Uint8Array(SIZE);
  const first = new Uint8Array(BS).fill(5);
  await vol.write(0, first);
  model.set(first, 0);
  const j = await enableJournal(vol, ns, '');
  const flushes = new Map<number, Uint8Array>([[-1, model.slice()]]);
  const marks = new Map<string, Uint8Array>();
  const write = async (): Promise<void> => {
    const len = LENGTHS[int(LENGTHS.length)]!;
    const off = rnd() < 0.3 ? int(BLOCKS - Math.ceil(len / BS) + 1) * BS : int(SIZE - len + 1);
    if (rnd() < 0.1) {
      await vol.writeZeroes(off, len);
      model.fill(0, off, off + len);
      return;
    }
    const d = new Uint8Array(len);
    const v = 1 + int(255);
    for (let i = 0; i < len; i++) d[i] = (v + i * 3) & 0xff;
    await vol.write(off, d);
    model.set(d, off);
  };
  for (let step = 0; step < steps; step++) {
    const r = rnd();
    if (r < 0.7) await write();
    else if (r < 0.9) {
      await vol.flush();
      flushes.set(j.status().lastFlush, model.slice());
    } else {
      const m = await j.mark(`m${step}`);
      marks.set(m.label, model.slice());
      flushes.set(m.point, model.slice());
    }
  }
  await vol.flush();
  flushes.set(j.status().lastFlush, model.slice());
  const lastFlushed = model.slice();
  const flushedLogBytes = ns.files.get(SEG)!.length;
  for (let i = 0; i < tail; i++) await write();
  if (tail === 0) await vol.close();
  // else: abandoned, like a crashed process (memory keeps every byte it was given)
  const files = new Map<string, Uint8Array>();
  for (const [name, b] of ns.files) files.set(name, b.contents());
  const records: Image['records'] = [];
  const ro = new MemoryNamespace();
  ro.files.set(SEG, new MemoryBacking(files.get(SEG)!.slice()));
  const opened = await WriteLog.open(ro, true, (rec, place, dataAt) => records.push({ rec, pos: place.pos, dataAt }));
  await opened.log.close();
  return { files, flushes, marks, final: model.slice(), lastFlushed, flushedLogBytes, records };
}

function nsOf(img: Image, log?: Uint8Array): MemoryNamespace {
  const ns = new MemoryNamespace();
  for (const [name, b] of img.files) ns.files.set(name, new MemoryBacking((name === SEG && log ? log : b).slice()));
  return ns;
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

describe('write log: torn and truncated tails', () => {
  it('a torn tail after the last flush is cut on open and reported; volume, latest and marks read the last flush', async () => {
    const img = await makeImage(7, 60, 4);
    const full = img.files.get(SEG)!;
    expect(full.length).toBeGreaterThan(img.flushedLogBytes);
    const rnd = prng(77);
    const cuts = [img.flushedLogBytes + 1, full.length - 1, ...Array.from({ length: 10 }, () => img.flushedLogBytes + 1 + Math.floor(rnd() * (full.length - img.flushedLogBytes - 1)))];
    for (const cut of cuts) {
      const ns = nsOf(img, full.slice(0, cut));
      const { volume, journal } = await openJournaled(ns);
      try {
        const rec = journal!.status().recovered;
        expect(rec, `cut at ${cut}`).not.toBeNull();
        expect(rec!.cutBytes, `cut at ${cut}`).toBe(cut - img.flushedLogBytes);
        expect(ns.files.get(SEG)!.length).toBe(img.flushedLogBytes);
        const live = await volume.read(0, SIZE);
        expect(same(live, img.lastFlushed), `cut at ${cut}: volume`).toBe(true);
        expect(same(await journal!.view('latest').read(0, SIZE), live), `cut at ${cut}: latest`).toBe(true);
        for (const [label, m] of img.marks) expect(same(await journal!.view(`mark:${label}`).read(0, SIZE), m), `cut at ${cut}: mark ${label}`).toBe(true);
      } finally {
        await volume.close();
      }
    }
  });

  it('the whole unflushed tail (no truncation): cut on open, the volume at the last flush', async () => {
    const img = await makeImage(8, 50, 3);
    const ns = nsOf(img);
    const { volume, journal } = await openJournaled(ns);
    expect(journal!.status().recovered!.cutRecords).toBeGreaterThan(0);
    expect(same(await volume.read(0, SIZE), img.lastFlushed)).toBe(true);
    expect(same(await journal!.view('latest').read(0, SIZE), img.lastFlushed)).toBe(true);
    await volume.close();
  });
});

describe('write log: damage before durable records', () => {
  // A log that lost durable records at its end (cut at a record boundary just after a FLUSH, or
  // a few bytes later) looks like a clean or torn end. A writable open must never redo its last
  // flush interval over a volume that is past it (old bytes over new): Journal.checkBeforeRedo
  // refuses with `corrupt` when a block to redo reads as neither of the log's last two flushes.
  // (Loss that touches no block of the redo goes unnoticed: the log is then behind the volume
  // for those blocks. See the issue note.)
  it('a log cut short inside durable records (lost tail): the open refuses with corrupt or keeps the volume as it was; never a stale redo', async () => {
    const img = await makeImage(12, 60, 0);
    const full = img.files.get(SEG)!;
    const flushes = img.records.filter((r) => r.rec.kind === KIND_FLUSH && r.pos > 0);
    expect(flushes.length).toBeGreaterThan(4);
    let refused = 0;
    for (const f of flushes.slice(0, -1)) {
      const next = img.records.find((r) => r.pos > f.pos)!;
      const cut = next.pos + (f.rec.seq % 2 === 0 ? 0 : 5);
      const ns = nsOf(img, full.slice(0, cut));
      try {
        const { volume } = await openJournaled(ns);
        try {
          expect(same(await volume.read(0, SIZE), img.final), `cut at ${cut} (after flush ${f.rec.seq}): the volume changed on open`).toBe(true);
        } finally {
          await volume.close();
        }
      } catch (e) {
        expect(isStrataError(e) && e.code === 'corrupt', String(e)).toBe(true);
        refused++;
        const ro = await Volume.open(ns, { readOnly: true });
        expect(same(await ro.read(0, SIZE), img.final), `cut at ${cut}: the refused open changed the volume`).toBe(true);
        await ro.close();
      }
    }
    expect(refused).toBeGreaterThan(0);
  });

  it('a damaged record header followed by durable flushes is corrupt, naming the record', async () => {
    const img = await makeImage(9, 60, 0);
    const full = img.files.get(SEG)!;
    const lastFlushAt = Math.max(...img.records.filter((r) => r.rec.kind === KIND_FLUSH).map((r) => r.pos));
    const victims = img.records.filter((r) => r.pos > 0 && r.pos < lastFlushAt);
    expect(victims.length).toBeGreaterThan(5);
    for (const v of victims.filter((_, i) => i % 5 === 0)) {
      const log = full.slice();
      log[v.pos + 9] ^= 0x40; // inside the envelope header
      {
        const ns = nsOf(img, log);
        const e = await openJournaled(ns).then(
          async (o) => {
            await o.volume.close();
            return null;
          },
          (x: unknown) => x,
        );
        expect(isStrataError(e), `record ${v.rec.seq} (writable): ${String(e)}`).toBe(true);
        expect((e as { code: string }).code).toBe('corrupt');
        expect((e as Error).message).toContain(`record ${v.rec.seq} `);
        expect((e as Error).message).toContain('journal disable DIR --force');
        // the damaged log was not cut
        expect(ns.files.get(SEG)!.length).toBe(full.length);
      }
      {
        // read-only: the points before the damage read right, later ones are out of range
        const ns = nsOf(img, log);
        const { volume, journal } = await openJournaled(ns, { readOnly: true });
        try {
          expect(journal!.status().recovered?.reason).toContain(`record ${v.rec.seq} `);
          const last = journal!.status().lastFlush;
          expect(last).toBeLessThan(v.rec.seq);
          for (const [seq, m] of img.flushes) {
            if (seq > last) {
              expect(() => journal!.view(`seq:${seq}`)).toThrow(expect.objectContaining({ code: 'out-of-range' }));
              continue;
            }
            expect(same(await journal!.view(seq < 0 ? 'base' : `seq:${seq}`).read(0, SIZE), m), `read-only view at ${seq} before damaged record ${v.rec.seq}`).toBe(true);
          }
        } finally {
          await volume.close();
        }
        expect(ns.files.get(SEG)!.length).toBe(full.length);
      }
    }
  });

  it('a flipped data byte: views at and after the record read checksum-mismatch on that block, never wrong bytes; points before read right', async () => {
    const img = await makeImage(10, 60, 0);
    const full = img.files.get(SEG)!;
    const writes = img.records.filter((r) => r.rec.kind === KIND_WRITE);
    const rnd = prng(1010);
    let mismatches = 0;
    for (let t = 0; t < 12; t++) {
      const w = writes[Math.floor(rnd() * writes.length)]!;
      const rec = w.rec as Extract<LogRecord, { pieces: unknown }>;
      const log = full.slice();
      log[w.dataAt + Math.floor(rnd() * rec.dataLength)] ^= 1 << Math.floor(rnd() * 8);
      const { volume, journal } = await openJournaled(nsOf(img, log));
      try {
        expect(same(await volume.read(0, SIZE), img.final)).toBe(true);
        for (const [seq, m] of img.flushes) {
          let got: Uint8Array;
          try {
            got = await journal!.view(seq < 0 ? 'base' : `seq:${seq}`).read(0, SIZE);
          } catch (e) {
            expect(isStrataError(e) && e.code === 'checksum-mismatch', String(e)).toBe(true);
            expect(seq).toBeGreaterThanOrEqual(rec.seq);
            mismatches++;
            continue;
          }
          expect(same(got, m), `seq:${seq} after a flip in record ${rec.seq}`).toBe(true);
        }
      } finally {
        await volume.close();
      }
    }
    expect(mismatches).toBeGreaterThan(0);
  });
});

type Mutation = (log: Uint8Array, rnd: () => number) => Uint8Array;
const MUTATIONS: Mutation[] = [
  // flip 1–4 bits anywhere
  (log, rnd) => {
    const out = log.slice();
    for (let i = 0, n = 1 + Math.floor(rnd() * 4); i < n; i++) out[Math.floor(rnd() * out.length)] ^= 1 << Math.floor(rnd() * 8);
    return out;
  },
  // truncate anywhere
  (log, rnd) => log.slice(0, Math.floor(rnd() * log.length)),
  // zero a run
  (log, rnd) => {
    const out = log.slice();
    const at = Math.floor(rnd() * out.length);
    out.fill(0, at, Math.min(out.length, at + 1 + Math.floor(rnd() * 600)));
    return out;
  },
  // garbage appended
  (log, rnd) => {
    const extra = new Uint8Array(1 + Math.floor(rnd() * 300)).map(() => Math.floor(rnd() * 256));
    const out = new Uint8Array(log.length + extra.length);
    out.set(log);
    out.set(extra, log.length);
    return out;
  },
  // a run copied from elsewhere in the log (valid-looking records out of place)
  (log, rnd) => {
    const out = log.slice();
    const from = Math.floor(rnd() * out.length);
    const to = Math.floor(rnd() * out.length);
    const len = Math.min(out.length - Math.max(from, to), 1 + Math.floor(rnd() * 2000));
    out.copyWithin(to, from, from + len);
    return out;
  },
  // a random byte set to a random value in the first records (head, envelopes)
  (log, rnd) => {
    const out = log.slice();
    out[Math.floor(rnd() * Math.min(out.length, 512))] = Math.floor(rnd() * 256);
    return out;
  },
];

describe('write log: fuzzed damage', () => {
  const cases = LONG ? 100_000 : 300;
  it(`${cases} random mutations: opens or fails with a coded StrataError; every view read equals the model or fails with a code`, async () => {
    const img = await makeImage(11, 50, 0);
    const full = img.files.get(SEG)!;
    const rnd = prng(4242);
    const problems: string[] = [];
    const codes = new Map<string, number>();
    const count = (c: string): void => void codes.set(c, (codes.get(c) ?? 0) + 1);
    const coded = (e: unknown, what: string): void => {
      if (isStrataError(e) && typeof e.code === 'string' && e.code.length > 0) count(`${what}:${e.code}`);
      else problems.push(`${what}: not a StrataError: ${String(e)}`);
    };
    for (let c = 0; c < cases && problems.length < 5; c++) {
      const kind = Math.floor(rnd() * MUTATIONS.length);
      const log = MUTATIONS[kind]!(full, rnd);
      const readOnly = c % 2 === 1;
      let opened;
      try {
        opened = await openJournaled(nsOf(img, log), { readOnly });
      } catch (e) {
        coded(e, 'open');
        continue;
      }
      count('opened');
      const { volume, journal } = opened;
      try {
        if (!journal) {
          problems.push(`case ${c}: journal gone`);
          continue;
        }
        const last = journal.status().lastFlush;
        const points: [string, Uint8Array][] = [];
        for (const [seq, m] of img.flushes) if (seq <= last) points.push([seq < 0 ? 'base' : `seq:${seq}`, m]);
        for (const [label, m] of img.marks) if (journal.marks().some((x) => x.label === label)) points.push([`mark:${label}`, m]);
        // a few points per case (each read is a whole view), the latest flush always
        const chosen = points.length <= 4 ? points : [points[points.length - 1]!, ...Array.from({ length: 3 }, () => points[Math.floor(rnd() * points.length)]!)];
        for (const [p, m] of chosen) {
          try {
            const got = await journal.view(p).read(0, SIZE);
            if (!same(got, m)) problems.push(`case ${c} (mutation ${kind}): view at ${p} read wrong bytes`);
          } catch (e) {
            coded(e, 'read');
          }
        }
      } finally {
        await volume.close();
      }
    }
    if (process.env.DBG) console.log([...codes]);
    expect(problems).toEqual([]);
    expect(codes.get('opened') ?? 0).toBeGreaterThan(0);
  }, 3_600_000);
});
