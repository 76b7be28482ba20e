import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.ts';
import { MemoryNamespace } from '../../../src/store/memory.ts';
import { Volume } from '../../../src/volume/volume.ts';
import { decodeState, encodeState } from '../../../src/v86/state-file.ts';
import { NamespaceStateStore, stateFileName } from '../../../src/v86/state-store.ts';
import { equalBytes, Rng } from '../helpers/random.ts';

function fakeState(rng: Rng, n: number): ArrayBuffer {
  const b = new Uint8Array(n); // mostly zero pages, some written ones, like guest RAM
  for (let p = 0; p < n / 4096; p++) if (rng.int(8) === 0) b.set(rng.bytes(4096).subarray(0, Math.min(4096, n - p * 4096)), p * 4096);
  return b.buffer;
}

describe('machine state files', () => {
  it("round-trip, storing only non-zero pages", async () => {
    const raw = fakeState(new Rng(1), (4 << 20) + 100);
    const enc = await encodeState(raw);
    expect(enc.length).toBeLessThan(raw.byteLength / 4);
    expect(equalBytes(new Uint8Array(await decodeState(enc, 'x')), new Uint8Array(raw))).toBe(true);
  });

  it('refuse every truncation and damaged bytes with a code (seeded)', async () => {
    const rng = new Rng(7);
    const enc = await encodeState(fakeState(rng, 64 << 10));
    for (let cut = 0; cut < enc.length; cut += Math.max(1, rng.int(97))) {
      await expect(decodeState(enc.subarray(0, cut), 'x')).rejects.toMatchObject({ code: 'corrupt' });
    }
    for (let i = 0; i < 300; i++) {
      const bad = enc.slice();
      const at = rng.int(bad.length);
      bad[at] ^= 1 << rng.int(8);
      await expect(decodeState(bad, 'x')).rejects.toMatchObject({ code: expect.stringMatching(/^(corrupt|unsupported)$/) });
    }
  });

  it('live in the volume namespace beside the layers, which the volume leaves alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'v86-state-'));
    try {
      const ns = new NodeDirNamespace(dir, { create: true });
      const vol = await Volume.create(ns, { size: 1 << 20 });
      await vol.snapshot('a+b:c');
      const states = new NamespaceStateStore(ns);
      await states.put('a+b:c', new Uint8Array([1, 2, 3]));
      expect(stateFileName('a+b:c')).toBe('v86-state.a_2bb_3ac');
      await vol.close();
      const again = await Volume.open(new NodeDirNamespace(dir));
      expect(await new NamespaceStateStore(again.ns).list()).toEqual([{ name: 'a+b:c', bytes: 3 }]);
      expect(await new NamespaceStateStore(again.ns).get('a+b:c')).toEqual(new Uint8Array([1, 2, 3]));
      await again.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('memory namespaces work too', async () => {
    const s = new NamespaceStateStore(new MemoryNamespace());
    expect(await s.get('nope')).toBeUndefined();
    await s.put('x', new Uint8Array(10));
    await s.delete('x');
    expect(await s.list()).toEqual([]);
  });
});
