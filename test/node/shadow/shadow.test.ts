import { describe, expect, it } from 'vitest';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { Rng, equalBytes } from '../helpers/random.js';

/** Rejects (or throws) a StrataError with this code. */
async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  if (typeof p === 'function') expect(p).toThrow(expect.objectContaining({ name: 'StrataError', code }));
  else await expect(p).rejects.toMatchObject({ name: 'StrataError', code });
}

function setup(size: number, seed = 1): { volume: MemoryStore; ns: MemoryNamespace; model: Uint8Array } {
  const model = new Rng(seed).bytes(size);
  return { volume: new MemoryStore(model.slice()), ns: new MemoryNamespace(), model };
}

/** A new handle on the same bytes (a ShadowVolume closes the store it was given). */
function reopen(v: MemoryStore): MemoryStore {
  return new MemoryStore(v.backing);
}

async function expectCopy(sv: ShadowVolume, name: string, want: Uint8Array): Promise<void> {
  const r = sv.openShadow(name);
  const got = await r.read(0, want.length);
  expect(equalBytes(got, want), `copy ${name}`).toBe(true);
}

describe('shadow copies (writer, in-process reads)', () => {
  it('random writes, creations and deletions in any order: every copy keeps its content, across reopen', async () => {
    const bs = 4096;
    const size = bs * 40 + 700; // a short last block
    const { volume, ns, model } = setup(size);
    let sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: bs });
    const rng = new Rng(7);
    const copies = new Map<string, Uint8Array>();
    let n = 0;
    for (let step = 0; step < 400; step++) {
      const r = rng.next();
      if (r < 0.06 && copies.size < 8) {
        const name = `c${n++}`;
        const info = await sv.createShadow({ name });
        expect(info.name).toBe(name);
        copies.set(name, model.slice());
      } else if (r < 0.1 && copies.size > 0) {
        const name = rng.pick([...copies.keys()]);
        await sv.deleteShadow(name);
        copies.delete(name);
        await expectCode(() => sv.openShadow(name), 'not-found');
      } else if (r < 0.12) {
        await sv.close();
        sv = await ShadowVolume.open(reopen(volume), ns);
      } else {
        const len = rng.pick([1, 511, bs, 3 * bs + 17, rng.int(8 * bs) + 1]);
        const off = rng.int(size - Math.min(len, size - 1));
        const data = rng.bytes(Math.min(len, size - off));
        await sv.write(off, data);
        model.set(data, off);
      }
      if (step % 25 === 0 || step === 399) {
        expect(sv.list().map((c) => c.name).sort()).toEqual([...copies.keys()].sort());
        for (const [name, want] of copies) await expectCopy(sv, name, want);
        expect(equalBytes(await sv.read(0, size), model)).toBe(true);
      }
    }
    await sv.close();
  });

  it('creation is O(1): no volume bytes are copied until a block is overwritten', async () => {
    const { volume, ns } = setup(64 * 4096);
    const sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: 4096 });
    const info = await sv.createShadow({ name: 'a' });
    expect(info.preservedBlocks).toBe(0);
    expect((await ns.open('S000001.diff')).size).toBe(4096);
    await sv.write(4096 * 3 + 5, new Uint8Array(10000));
    expect(sv.list()[0]!.preservedBlocks).toBe(3);
    await sv.write(4096 * 3, new Uint8Array(4096)); // not a first write: nothing more preserved
    expect(sv.list()[0]!.preservedBlocks).toBe(3);
    await sv.close();
  });

  it('the newest copy receives; older ones read through newer diff areas', async () => {
    const bs = 512;
    const { volume, ns, model } = setup(bs * 8);
    const sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: bs });
    await sv.createShadow({ name: 'old' });
    const atOld = model.slice();
    await sv.write(0, new Uint8Array(bs).fill(1)); // preserved in old
    await sv.createShadow({ name: 'new' });
    const atNew = atOld.slice();
    atNew.fill(1, 0, bs);
    await sv.write(bs, new Uint8Array(bs).fill(2)); // preserved in new only; old reads it there
    await sv.write(0, new Uint8Array(bs).fill(3));
    const [o, nw] = sv.list();
    expect(o!.preservedBlocks).toBe(1);
    expect(nw!.preservedBlocks).toBe(2);
    await expectCopy(sv, 'old', atOld);
    await expectCopy(sv, 'new', atNew);
    await sv.deleteShadow('new'); // old still reads block 1 through the deleted area
    await expectCopy(sv, 'old', atOld);
    await sv.write(bs * 2, new Uint8Array(bs).fill(4)); // old's own area receives (a deleted area never does)
    expect(sv.list()[0]!.preservedBlocks).toBe(2);
    await expectCopy(sv, 'old', atOld);
    await sv.deleteShadow('old');
    expect((await ns.list()).filter((x) => x.endsWith('.diff'))).toEqual([]);
    await sv.close();
  });

  it("diff area full, policy 'fail': the write is refused, nothing changes, the copy is kept", async () => {
    const bs = 4096;
    const { volume, ns, model } = setup(bs * 16);
    const sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: bs });
    await sv.createShadow({ name: 'f', onFull: 'fail', maxBytes: 4096 + 3 * 4096 });
    const snap = model.slice();
    await sv.write(0, new Uint8Array(bs).fill(9)); // 512 + 4096 bytes of log
    await sv.write(bs, new Uint8Array(bs).fill(9));
    const before = await sv.read(0, bs * 16);
    await expectCode(sv.write(bs * 5, new Uint8Array(bs * 2).fill(7)), 'quota');
    expect(equalBytes(await sv.read(0, bs * 16), before)).toBe(true);
    await expectCopy(sv, 'f', snap);
    await sv.write(0, new Uint8Array(bs).fill(5)); // already preserved: goes through
    await sv.close();
    const again = await ShadowVolume.open(reopen(volume), ns);
    await expectCopy(again, 'f', snap);
    await again.close();
  });

  it("diff area full, policy 'drop': writes go on, the copy is dropped, readers get a clear error, older copies survive", async () => {
    const bs = 4096;
    const { volume, ns, model } = setup(bs * 16);
    const sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: bs });
    await sv.createShadow({ name: 'older' });
    const atOlder = model.slice();
    await sv.createShadow({ name: 'small', onFull: 'drop', maxBytes: 4096 + 4608 });
    const reader = sv.openShadow('small');
    await sv.write(0, new Uint8Array(bs).fill(1));
    await sv.write(bs * 4, new Uint8Array(bs * 3).fill(2)); // does not fit: 'small' dropped, 'older' takes the blocks
    expect(sv.list().map((c) => c.name)).toEqual(['older']);
    expect(sv.lost().map((c) => c.name)).toEqual(['small']);
    await expectCode(reader.read(0, bs), 'quota');
    await expectCode(() => sv.openShadow('small'), 'quota');
    await expectCopy(sv, 'older', atOlder);
    await sv.write(bs * 9, new Uint8Array(bs).fill(3));
    await expectCopy(sv, 'older', atOlder);
    await sv.close();
    const again = await ShadowVolume.open(reopen(volume), ns);
    await expectCopy(again, 'older', atOlder);
    expect(again.lost().map((c) => c.name)).toEqual(['small']);
    await again.deleteShadow('small');
    expect(again.lost()).toEqual([]);
    await again.close();
  });

  it("a deleted copy releases its limit: its area takes no more blocks, its 'fail' policy refuses nothing, also after reopen", async () => {
    const bs = 4096;
    for (const reopenFirst of [false, true]) {
      const { volume, ns, model } = setup(bs * 64);
      let sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: bs });
      await sv.createShadow({ name: 'O' });
      const atO = model.slice();
      await sv.createShadow({ name: 'F', onFull: 'fail', maxBytes: 32 * 1024 });
      const big = new Uint8Array(200 * 1024).fill(7);
      await expectCode(sv.write(0, big), 'quota'); // correct: F cannot hold 50 blocks
      await sv.deleteShadow('F');
      if (reopenFirst) {
        await sv.close();
        sv = await ShadowVolume.open(reopen(volume), ns);
      }
      await sv.write(0, big); // F is gone: its limit no longer applies
      model.set(big, 0);
      expect(sv.list().map((c) => [c.name, c.preservedBlocks])).toEqual([['O', 50]]);
      expect(equalBytes(await sv.read(0, model.length), model)).toBe(true);
      await expectCopy(sv, 'O', atO);
      await sv.close();
      const again = await ShadowVolume.open(reopen(volume), ns);
      await expectCopy(again, 'O', atO);
      await again.deleteShadow('O');
      expect((await ns.list()).filter((x) => x.endsWith('.diff'))).toEqual([]);
      await again.close();
    }
  });

  it("a full 'drop' copy is dropped only when a write goes through: not for a write a 'fail' copy refuses, nor because of a deleted one", async () => {
    const bs = 4096;
    const { volume, ns, model } = setup(bs * 64);
    let sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: bs });
    await sv.createShadow({ name: 'O' });
    const atO = model.slice();
    await sv.createShadow({ name: 'F', onFull: 'fail', maxBytes: 32 * 1024 });
    await sv.createShadow({ name: 'D', onFull: 'drop', maxBytes: 64 * 1024 });
    const big = new Uint8Array(200 * 1024).fill(7);
    // D cannot hold it and F refuses: the write is refused, and nothing changed (D is not dropped).
    await expect(sv.write(0, big)).rejects.toMatchObject({ code: 'quota', message: expect.stringContaining('shadow copy F') });
    expect(sv.list().map((c) => c.name)).toEqual(['O', 'F', 'D']);
    expect(sv.lost()).toEqual([]);
    await expectCopy(sv, 'D', atO);
    // A write D can hold goes to D alone.
    await sv.write(bs * 60, new Uint8Array(bs).fill(1));
    model.fill(1, bs * 60, bs * 61);
    expect(sv.list().map((c) => [c.name, c.preservedBlocks])).toEqual([['O', 0], ['F', 0], ['D', 1]]);
    await sv.deleteShadow('F');
    await sv.close();
    sv = await ShadowVolume.open(reopen(volume), ns);
    // F is deleted: D (full, 'drop') is dropped and O's own area takes the blocks.
    await sv.write(0, big);
    model.set(big, 0);
    expect(sv.list().map((c) => [c.name, c.preservedBlocks])).toEqual([['O', 50]]);
    expect(sv.lost().map((c) => c.name)).toEqual(['D']);
    await expectCopy(sv, 'O', atO);
    // A newer 'drop' copy with room is never dropped because of the deleted 'fail' copy.
    await sv.deleteShadow('D');
    await sv.createShadow({ name: 'E', onFull: 'drop', maxBytes: 1024 * 1024 });
    const atE = model.slice();
    await sv.write(bs * 10, big);
    expect(sv.list().map((c) => [c.name, c.preservedBlocks])).toEqual([['O', 50], ['E', 50]]);
    expect(sv.lost()).toEqual([]);
    await expectCopy(sv, 'O', atO);
    await expectCopy(sv, 'E', atE);
    await sv.close();
  });

  it('refuses a resized volume, bad names, duplicates; one writer at a time', async () => {
    const { volume, ns } = setup(4096 * 4);
    const sv = await ShadowVolume.open(reopen(volume), ns, { blockSize: 4096 });
    await expectCode(ShadowVolume.open(reopen(volume), ns), 'locked');
    await expectCode(sv.createShadow({ name: 'bad/name' }), 'invalid-argument');
    await sv.createShadow({ name: 'x' });
    await expectCode(sv.createShadow({ name: 'x' }), 'exists');
    await expectCode(sv.write(4096 * 4 - 1, new Uint8Array(2)), 'out-of-range');
    await sv.close();
    await reopen(volume).truncate(4096 * 5);
    await expectCode(ShadowVolume.open(reopen(volume), ns), 'invalid-argument');
  });
});
