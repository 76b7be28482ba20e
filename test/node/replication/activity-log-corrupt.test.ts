import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { MAGIC_ACTIVITY_LOG } from '../../../src/format/magic.js';
import { encodeRecord } from '../../../src/format/record.js';
import { ActivityLog } from '../../../src/replication/activity-log.js';
import { MemoryBacking, MemoryNamespace } from '../../../src/store/memory.js';

/**
 * Damaged activity logs: a flipped byte or a truncation gives `corrupt` or a log that still
 * recovers every extent that was in use (an older record holds more, never fewer, after a clean
 * close); records with a valid checksum but hostile contents are `corrupt`, and no allocation is
 * sized by them.
 */
const BS = 4096;
const EXT = 64 * 1024;
const BPE = EXT / BS;
const GEOMETRY = { size: 40 * EXT, blockSize: BS };

async function written(): Promise<{ ns: MemoryNamespace; inUse: number[] }> {
  const ns = new MemoryNamespace();
  const al = await ActivityLog.open(ns, 'a', GEOMETRY, { extentBytes: EXT });
  const t = await al.enter([0, 1, 3 * BPE, 2]);
  await al.enter([10 * BPE, BPE + 1, 39 * BPE, 1]);
  al.releaseUpTo(t);
  await al.close(); // keeps 10, 11 and 39, still in use
  return { ns, inUse: [10, 11, 39] };
}

function clone(ns: MemoryNamespace): MemoryNamespace {
  const files = new Map<string, MemoryBacking>();
  for (const [name, b] of ns.files) files.set(name, new MemoryBacking(b.contents()));
  return new MemoryNamespace({ files });
}

async function recoveredExtents(ns: MemoryNamespace): Promise<Set<number> | 'corrupt'> {
  try {
    const al = await ActivityLog.open(ns, 'a', GEOMETRY, { extentBytes: EXT });
    const out = new Set<number>();
    const r = al.recovered;
    for (let i = 0; i < r.length; i += 2) for (let b = r[i]!; b < r[i]! + r[i + 1]!; b += BPE) out.add(Math.floor(b / BPE));
    return out;
  } catch (e) {
    if (isStrataError(e, 'corrupt')) return 'corrupt';
    throw e;
  }
}

function record(seq: number, fields: { blockSize?: number; size?: number; extentBytes?: number; count?: number; reserved?: number }, extents: number[]): Uint8Array {
  const p = new Uint8Array(24 + 4 * extents.length);
  const v = new DataView(p.buffer);
  v.setUint32(0, fields.blockSize ?? BS, true);
  v.setUint32(4, fields.size ?? GEOMETRY.size, true);
  v.setUint32(12, fields.extentBytes ?? EXT, true);
  v.setUint32(16, fields.count ?? extents.length, true);
  v.setUint32(20, fields.reserved ?? 0, true);
  extents.forEach((e, i) => v.setUint32(24 + 4 * i, e, true));
  return encodeRecord({ magic: MAGIC_ACTIVITY_LOG, kind: 1, version: 1, seq, length: p.length }, p);
}

describe('ActivityLog damaged files', () => {
  it('every flipped byte and every truncation gives corrupt or every extent in use', async () => {
    const { ns, inUse } = await written();
    let corrupted = 0, ok = 0;
    for (const [file, backing] of ns.files) {
      const bytes = backing.contents();
      for (let at = 0; at < bytes.length; at++) {
        for (const damaged of [(() => { const b = bytes.slice(); b[at] ^= 1 << (at % 8); return b; })(), bytes.slice(0, at)]) {
          const copy = clone(ns);
          copy.files.set(file, new MemoryBacking(damaged));
          const got = await recoveredExtents(copy);
          if (got === 'corrupt') corrupted++;
          else {
            for (const e of inUse) expect(got.has(e), `${file} byte ${at}: extent ${e}`).toBe(true);
            ok++;
          }
        }
      }
    }
    // a damaged slot falls back to the other: after a clean close it holds the commit before, a superset
    expect(ok + corrupted).toBeGreaterThan(100);
  });

  it('a new log has bytes at once: files with bytes but no whole record are corrupt, never a new log', async () => {
    const ns = new MemoryNamespace();
    await (await ActivityLog.open(ns, 'a', GEOMETRY)).close();
    expect(ns.files.get('a.0')!.length).toBeGreaterThan(0);
    const bad = new MemoryNamespace();
    bad.files.set('a.0', new MemoryBacking(new Uint8Array(40).fill(3)));
    await expect(ActivityLog.open(bad, 'a', GEOMETRY)).rejects.toMatchObject({ code: 'corrupt', message: expect.stringContaining('full resync') });
  });

  it('hostile records with valid checksums are corrupt', async () => {
    const cases: [string, Uint8Array][] = [
      ['another volume size', record(9, { size: GEOMETRY.size * 2 }, [1])],
      ['another block size', record(9, { blockSize: 8192 }, [1])],
      ['extents that are not a power of two', record(9, { extentBytes: 3 * BS }, [1])],
      ['a count of 2^32-1 in a short record', record(9, { count: 2 ** 32 - 1 }, [1])],
      ['an extent past the volume', record(9, {}, [40])],
      ['extents out of order', record(9, {}, [5, 2])],
      ['a repeated extent', record(9, {}, [5, 5])],
      ['reserved bits', record(9, { reserved: 1 }, [1])],
    ];
    for (const [what, rec] of cases) {
      const { ns } = await written();
      ns.files.set('a.1', new MemoryBacking(rec));
      await expect(ActivityLog.open(ns, 'a', GEOMETRY, { extentBytes: EXT }), what).rejects.toMatchObject({ code: 'corrupt' });
    }
    const { ns } = await written();
    const newer = record(9, {}, [1]);
    newer[6] = 2;
    const p = newer.subarray(24, newer.length - 8).slice();
    ns.files.set('a.1', new MemoryBacking(encodeRecord({ magic: MAGIC_ACTIVITY_LOG, kind: 1, version: 2, seq: 9, length: p.length }, p)));
    await expect(ActivityLog.open(ns, 'a', GEOMETRY, { extentBytes: EXT })).rejects.toMatchObject({ code: 'unsupported' });
  });
});
