import { randomFillSync } from 'node:crypto';
import { mkdtemp, open as fsOpen, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import type { ChainData, ChainLayer } from '../../../src/volume/chain.js';
import { PIECE_MIN_BYTES, RunReader, piecesFor } from '../../../src/volume/run-reader.js';
import { Volume } from '../../../src/volume/volume.js';
import { hashSegments128, loadKernels, SparseBitmap } from '../../../src/wasm/index.js';
import { equalBytes } from '../helpers/random.js';

// Long verified runs are read in pieces, all in flight, each hashed as it lands
// (src/volume/run-reader.ts): a damaged block in any piece is still refused with its own byte
// range, whatever order the pieces land in, and the read settles only once every piece has.

const KiB = 1024;
const MiB = 1024 * KiB;
const BS = 64 * KiB;

beforeAll(() => loadKernels());

async function mismatch(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(isStrataError(e, 'checksum-mismatch'), `expected checksum-mismatch, got ${String(e)}`).toBe(true);
  return (e as Error).message;
}

describe('piecesFor', () => {
  const blocks = (bytes: number) => bytes / BS;
  it('splits only runs that are read in the background anyway, into pieces that are too', () => {
    // stores that do not say how they do I/O: whole
    expect(piecesFor({ readInto: async () => {} }, blocks(64 * MiB), BS)).toBe(1);
    // 'async' io: pieces of at least PIECE_MIN_BYTES
    const async: ChainData = { io: 'async', readInto: async () => {} };
    expect(piecesFor(async, blocks(PIECE_MIN_BYTES), BS)).toBe(1);
    expect(piecesFor(async, blocks(4 * MiB), BS)).toBe(4);
    // 'sync' io: a run that is one blocking call stays one; a longer one is cut into pieces
    // that each exceed syncMaxBytes (so each is still read on the thread pool)
    const sync: ChainData = { io: 'sync', syncMaxBytes: MiB, readInto: async () => {} };
    expect(piecesFor(sync, blocks(MiB), BS)).toBe(1);
    expect(piecesFor(sync, blocks(2 * MiB), BS)).toBe(1);
    const n = piecesFor(sync, blocks(4 * MiB), BS);
    expect(n).toBe(3);
    const count = blocks(4 * MiB);
    for (let i = 0; i < n; i++) expect((Math.floor(((i + 1) * count) / n) - Math.floor((i * count) / n)) * BS).toBeGreaterThan(MiB);
    // 1 MiB blocks: at most one block per piece
    expect(piecesFor(async, 8, MiB)).toBe(8);
  });
});

/** A layer over `bytes` whose reads land when the test says, in any order. */
function fakeLayer(bytes: Uint8Array, stored: Uint8Array) {
  const pending: { offset: number; target: Uint8Array; done: (e?: Error) => void }[] = [];
  let inFlight = 0;
  const data: ChainData = {
    io: 'async',
    readInto(offset, target) {
      inFlight++;
      return new Promise<void>((resolve, reject) => {
        pending.push({
          offset,
          target,
          done: (e) => {
            inFlight--;
            if (e) reject(e);
            else {
              if (target.length > 0) target.set(bytes.subarray(offset, offset + target.length)); // (a detached view has length 0)
              resolve();
            }
          },
        });
      });
    },
  };
  const layer: ChainLayer = {
    id: 'L000009',
    owned: new SparseBitmap(),
    verified: new SparseBitmap(),
    slot: (b) => b,
    data,
    hashRun(first, count, out, at = 0) {
      out.set(stored.subarray(first * 16, (first + count) * 16), at);
    },
  };
  return { layer, pending, inFlight: () => inFlight };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('RunReader: a long verified run read in pieces', () => {
  const COUNT = 64; // 4 MiB of 64 KiB blocks: 4 pieces of 16 blocks on an 'async' store
  function setup() {
    const bytes = randomFillSync(new Uint8Array(COUNT * BS));
    const stored = hashSegments128(bytes, BS);
    return { bytes, stored, ...fakeLayer(bytes, stored) };
  }

  it('reads every piece in flight together and returns the bytes, all verified', async () => {
    const { bytes, layer, pending } = setup();
    const reader = new RunReader(BS, 'on', 'vol');
    const target = new Uint8Array(COUNT * BS);
    const ios: Promise<void>[] = [];
    reader.read(layer, 0, 0, COUNT, 0, COUNT * BS, 0, target, ios);
    expect(pending.length).toBe(4);
    // land them last first
    for (const p of [...pending].reverse()) p.done();
    await Promise.all(ios);
    expect(equalBytes(target, bytes)).toBe(true);
    expect(layer.verified!.count(0, COUNT)).toBe(COUNT);
  });

  it('a damaged block in a later piece is refused with its byte range, after every piece has settled, whatever the landing order', async () => {
    for (const order of [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]]) {
      const { bytes, layer, pending, inFlight } = setup();
      const bad = 41; // in piece 2 (blocks 32..47)
      bytes[bad * BS + 123] ^= 0x10;
      const reader = new RunReader(BS, 'on', 'vol');
      const target = new Uint8Array(COUNT * BS);
      const ios: Promise<void>[] = [];
      reader.read(layer, 0, 0, COUNT, 0, COUNT * BS, 0, target, ios);
      let settled = false;
      const result = mismatch(ios[0]!.finally(() => (settled = true)));
      // land pieces one at a time; the read must not settle while one is still out
      for (const i of order) {
        expect(settled).toBe(false);
        pending[i]!.done();
        await tick();
      }
      const msg = await result;
      expect(inFlight()).toBe(0);
      expect(msg).toContain('layer L000009');
      expect(msg).toContain(`bytes ${bad * BS}-${(bad + 1) * BS - 1} (block ${bad})`);
      // blocks of the pieces before it were checked and are known good; the bad one is not
      expect(layer.verified!.count(0, 32)).toBe(32);
      expect(layer.verified!.test(bad)).toBe(false);
    }
  });

  it('a piece whose read fails rejects with that error once the others have landed (no unhandled rejection)', async () => {
    const { layer, pending, inFlight } = setup();
    const reader = new RunReader(BS, 'on', 'vol');
    const ios: Promise<void>[] = [];
    reader.read(layer, 0, 0, COUNT, 0, COUNT * BS, 0, new Uint8Array(COUNT * BS), ios);
    pending[3]!.done(new Error('EIO on piece 3'));
    await tick();
    pending[0]!.done();
    pending[1]!.done();
    await tick();
    pending[2]!.done();
    await expect(ios[0]!).rejects.toThrow('EIO on piece 3');
    expect(inFlight()).toBe(0);
  });

  it('a target detached while its read is in flight is refused, and no block is marked verified', async () => {
    // A view of WebAssembly memory is detached when the memory grows: its length drops to 0,
    // and hashing it would check nothing.
    for (const count of [1, COUNT]) {
      const { layer, pending } = setup();
      const reader = new RunReader(BS, 'on', 'vol');
      const ab = new ArrayBuffer(count * BS);
      const ios: Promise<void>[] = [];
      reader.read(layer, 0, 0, count, 0, count * BS, 0, new Uint8Array(ab), ios);
      structuredClone(ab, { transfer: [ab] });
      for (const p of pending) p.done();
      const e = await ios[0]!.then(() => null, (x: unknown) => x);
      expect(isStrataError(e, 'invalid-argument'), String(e)).toBe(true);
      expect(layer.verified!.count(0, COUNT)).toBe(0);
    }
  });

  it("mode 'off' reads the same pieces and checks nothing", async () => {
    const { bytes, layer, pending } = setup();
    bytes[5 * BS] ^= 1;
    const reader = new RunReader(BS, 'off', 'vol');
    const target = new Uint8Array(COUNT * BS - 100);
    const ios: Promise<void>[] = [];
    // an unaligned span: a partial first block, 62 whole blocks in pieces, a partial last block
    reader.read(layer, 0, 0, COUNT, 50, COUNT * BS - 50, 50, target, ios);
    for (const p of pending) p.done();
    await Promise.all(ios);
    expect(equalBytes(target, bytes.subarray(50, COUNT * BS - 50))).toBe(true);
    expect(layer.verified!.count(0, COUNT)).toBe(0);
  });
});

describe('a volume on files read in pieces (thread-pool reads)', () => {
  let dir = '';
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = '';
  });

  for (const io of [{ io: 'async' as const }, { io: 'sync' as const, syncMaxBytes: 256 * KiB }]) {
    it(`a flipped byte in the middle of a 4 MiB read is refused with its range (io ${JSON.stringify(io)})`, async () => {
      dir = await mkdtemp(join(tmpdir(), 'stratadisk-pieces-'));
      const size = 8 * MiB;
      const data = randomFillSync(new Uint8Array(size));
      const w = await Volume.create(new NodeDirNamespace(dir, { create: true }), { size, blockSize: BS });
      await w.write(0, data);
      await w.close();
      // block 37 (2.3 MiB into the first 4 MiB), slot 37: the layer's slots were written in order
      const bad = 37;
      const f = await fsOpen(join(dir, 'L000001.data'), 'r+');
      const one = new Uint8Array(1);
      await f.read(one, 0, 1, bad * BS + 4000);
      one[0] ^= 0x40;
      await f.write(one, 0, 1, bad * BS + 4000);
      await f.close();
      const stored = data.slice();
      stored[bad * BS + 4000] ^= 0x40;

      const ns = new NodeDirNamespace(dir, { readOnly: true, ...io });
      const v = await Volume.open(ns, { readOnly: true });
      try {
        const msg = await mismatch(v.read(0, 4 * MiB));
        expect(msg).toContain(`bytes ${bad * BS}-${(bad + 1) * BS - 1}`);
        expect(equalBytes(await v.read(4 * MiB, 4 * MiB), data.subarray(4 * MiB))).toBe(true);
        // an unaligned long read around it is refused too; one that stops before it is fine
        await mismatch(v.read(BS / 2, 3 * MiB));
        expect(equalBytes(await v.read(100, bad * BS - 100), data.subarray(100, bad * BS))).toBe(true);
      } finally {
        await v.close();
      }
      const off = await Volume.open(new NodeDirNamespace(dir, { readOnly: true, ...io }), { readOnly: true, verify: 'off' });
      try {
        expect(equalBytes(await off.read(0, size), stored)).toBe(true);
        expect(equalBytes(await off.read(BS / 2 + 7, 5 * MiB), stored.subarray(BS / 2 + 7, BS / 2 + 7 + 5 * MiB))).toBe(true);
      } finally {
        await off.close();
      }
    });
  }
});
