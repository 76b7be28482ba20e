/**
 * Corruption and fuzzing of the shadow metadata parsers (diff-area logs and the catalog): metadata
 * bytes flipped (every one with STRATADISK_LONG=1), every truncation of a log, and seeded random damage. Each case ends in
 * a StrataError with a code, or in a state where every listed copy reads exactly its content;
 * never a crash, a hang or a wrong read. STRATADISK_LONG=1 runs 20,000 random cases.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { RECORD_HEADER, RECORD_OVERHEAD } from '../../../src/format/record.js';
import { AREA_HEADER_BYTES, MAGIC_DIFF_AREA } from '../../../src/shadow/diff-area.js';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryBacking, MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng, equalBytes } from '../helpers/random.js';

const long = process.env.STRATADISK_LONG === '1';
const BS = 512;
const BLOCKS = 32;

interface Fixture {
  files: Map<string, Uint8Array>;
  volume: Uint8Array;
  copies: Map<string, Uint8Array>;
  /** metadata byte ranges per area file: [from, to)* */
  meta: Map<string, number[]>;
  /** end of each area's log (after the seal) */
  ends: Map<string, number>;
}

async function fixture(): Promise<Fixture> {
  await loadKernels();
  const rng = new Rng(5);
  const model = rng.bytes(BS * BLOCKS);
  const ns = new MemoryNamespace();
  const backing = new MemoryBacking(model.slice());
  const sv = await ShadowVolume.open(new MemoryStore(backing), ns, { blockSize: BS, sharedMemory: false });
  const copies = new Map<string, Uint8Array>();
  for (let c = 0; c < 3; c++) {
    await sv.createShadow({ name: `c${c}` });
    copies.set(`c${c}`, model.slice());
    for (let i = 0; i < 6; i++) {
      const off = rng.int(BLOCKS - 3) * BS + rng.int(BS);
      const data = rng.bytes(rng.int(3 * BS) + 1);
      await sv.write(off, data);
      model.set(data, off);
    }
  }
  await sv.close();
  const files = new Map<string, Uint8Array>();
  for (const [name, b] of ns.files) files.set(name, b.contents());
  const meta = new Map<string, number[]>();
  const ends = new Map<string, number>();
  for (const [name, bytes] of files) {
    if (!name.endsWith('.diff')) continue;
    // Metadata = the bytes records cover (header, payload, checksum): not padding, not data.
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const ranges: number[] = [0, RECORD_OVERHEAD + v.getUint32(16, true)];
    let pos = AREA_HEADER_BYTES;
    while (pos + RECORD_OVERHEAD <= bytes.length && v.getUint32(pos, true) === MAGIC_DIFF_AREA) {
      const len = v.getUint32(pos + 16, true);
      ranges.push(pos, pos + RECORD_OVERHEAD + len);
      if (v.getUint16(pos + 4, true) !== 2) break; // the seal ends the log
      const blocks = v.getUint32(pos + RECORD_HEADER + 20, true);
      pos += Math.ceil((RECORD_OVERHEAD + len) / 512) * 512 + blocks * BS;
    }
    meta.set(name, ranges);
    ends.set(name, ranges[ranges.length - 1]!);
    // Drop the zeros the writer allocated ahead (a shorter file is a valid state): faster cases.
    files.set(name, bytes.slice(0, Math.ceil(ranges[ranges.length - 1]! / 512) * 512));
  }
  return { files, volume: backing.contents(), copies, meta, ends };
}

/** Open the damaged files; any outcome but a coded error or exact copies fails the test. */
async function check(f: Fixture, files: Map<string, Uint8Array>, label: string): Promise<'error' | 'ok'> {
  const ns = new MemoryNamespace();
  for (const [n, b] of files) ns.files.set(n, new MemoryBacking(b));
  let sv: ShadowVolume;
  try {
    sv = await ShadowVolume.open(new MemoryStore(f.volume.slice()), ns, { sharedMemory: false });
  } catch (e) {
    expect(isStrataError(e), `${label}: ${String(e)}`).toBe(true);
    return 'error';
  }
  try {
    for (const c of sv.list()) {
      const want = f.copies.get(c.name);
      expect(want, `${label}: unknown copy ${c.name}`).toBeDefined();
      let got: Uint8Array;
      try {
        got = await sv.openShadow(c.name).read(0, BS * BLOCKS);
      } catch (e) {
        expect(isStrataError(e), `${label}: ${String(e)}`).toBe(true);
        return 'error';
      }
      expect(equalBytes(got, want!), `${label}: copy ${c.name} reads wrong bytes`).toBe(true);
    }
    return 'ok';
  } finally {
    await sv.close().catch(() => {});
  }
}

describe('shadow metadata corruption', () => {
  it('every metadata byte of every diff area and catalog slot flipped', async () => {
    const f = await fixture();
    let errors = 0, oks = 0;
    for (const [name, bytes] of f.files) {
      const ranges = f.meta.get(name) ?? [0, bytes.length];
      // Default run: every 2nd byte of the diff-area records, every 5th of the catalog's JSON; all with STRATADISK_LONG=1.
      const step = long ? 1 : f.meta.has(name) ? 2 : 5;
      for (let r = 0; r < ranges.length; r += 2) {
        for (let i = ranges[r]!; i < Math.min(ranges[r + 1]!, bytes.length); i += step) {
          const files = new Map([...f.files].map(([n, b]) => [n, b.slice()]));
          files.get(name)![i] ^= 1 << (i % 8);
          if ((await check(f, files, `${name} byte ${i}`)) === 'error') errors++;
          else oks++;
        }
      }
    }
    expect(errors).toBeGreaterThan(0);
    expect(oks).toBeGreaterThan(0);
  });

  it('every truncation of a diff area at a 512-byte boundary', async () => {
    const f = await fixture();
    for (const name of [...f.files.keys()].filter((n) => n.endsWith('.diff'))) {
      const len = f.ends.get(name)! + 512;
      for (let cut = 0; cut < len; cut += 512) {
        const files = new Map([...f.files].map(([n, b]) => [n, b.slice()]));
        files.set(name, files.get(name)!.slice(0, cut));
        await check(f, files, `${name} cut at ${cut}`);
      }
    }
  });

  it(`${long ? 20_000 : 300} seeded random damages (bytes, runs of garbage, huge length fields)`, async () => {
    const f = await fixture();
    const names = [...f.files.keys()];
    const rng = new Rng(99);
    for (let k = 0; k < (long ? 20_000 : 300); k++) {
      const files = new Map([...f.files].map(([n, b]) => [n, b.slice()]));
      const name = rng.pick(names);
      let b = files.get(name)!;
      const kind = rng.int(4);
      const ranges = f.meta.get(name) ?? [0, b.length];
      const r = 2 * rng.int(ranges.length / 2);
      const from = ranges[r]!, to = Math.min(b.length, ranges[r + 1]!);
      const at = rng.range(from, Math.max(from + 1, to));
      // damage stays inside the metadata range (data damage is a check's business, not the parser's)
      if (kind === 0) for (let j = 0; j < 1 + rng.int(8); j++) b[rng.range(from, to)] = rng.int(256);
      else if (kind === 1) b.set(rng.bytes(Math.min(to - at, 64)), at);
      else if (kind === 2) {
        const p = Math.max(from, Math.min(to - 4, at - (at % 4)));
        if (p + 4 <= to) new DataView(b.buffer).setUint32(p, 0xffffffff, true);
      } else {
        const grown = new Uint8Array(b.length + 4096);
        grown.set(b);
        grown.set(rng.bytes(4096), b.length);
        b = grown;
      }
      files.set(name, b);
      await check(f, files, `case ${k} (${name}, kind ${kind}, at ${at})`);
    }
  });
});
