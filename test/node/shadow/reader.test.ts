/**
 * The passive reader protocol in one process (a worker_threads MessageChannel between writer and
 * reader, memory stores shared by reference): both modes read exactly, see new copies made after
 * they connected, and get clear errors when their copy is dropped or deleted or the writer closes.
 */
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ShadowReader, ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 512;
const N = 64;

async function pair(mode: 'shared' | 'message', copy: string, sv: ShadowVolume, ns: MemoryNamespace, volume: MemoryStore) {
  const ch = new MessageChannel();
  sv.serve(ch.port1);
  const reader = await ShadowReader.connect(ch.port2, { copy, volume: new MemoryStore(volume.backing, { readOnly: true }), areas: new MemoryNamespace({ files: ns.files, readOnly: true }), mode, timeoutMs: 5000 });
  return { reader, close: () => { ch.port1.close(); ch.port2.close(); } };
}

describe('passive reader protocol', () => {
  for (const mode of ['shared', 'message'] as const) {
    it(`${mode}: exact reads across writes and new copies; errors on drop, delete and close`, async () => {
      const model = new Rng(3).bytes(BS * N);
      const volume = new MemoryStore(model.slice());
      const ns = new MemoryNamespace();
      const sv = await ShadowVolume.open(new MemoryStore(volume.backing), ns, { blockSize: BS, sharedMemory: mode === 'shared' });
      await sv.createShadow({ name: 'a' });
      const atA = model.slice();
      await sv.write(0, new Uint8Array(4 * BS).fill(1));
      await sv.flush(); // group commit: preserved before the reader connects, read from the log
      model.fill(1, 0, 4 * BS);
      const { reader, close } = await pair(mode, 'a', sv, ns, volume);
      expect(equalBytes(await reader.read(0, BS * N), atA)).toBe(true);
      await sv.createShadow({ name: 'b' }); // a newer copy: a's reader must now look in b's area too
      await sv.write(10 * BS, new Uint8Array(8 * BS).fill(2));
      await sv.flush(); // published to the reader now (b's area), and the volume written
      expect(equalBytes(await reader.read(0, BS * N), atA)).toBe(true);
      expect(equalBytes(await reader.read(10 * BS + 7, 300), atA.subarray(10 * BS + 7, 10 * BS + 307))).toBe(true);
      expect(reader.stats.fromDiff).toBeGreaterThan(0);
      // b dropped (limit) and deleted: a still reads exactly
      await sv.deleteShadow('b');
      await sv.write(30 * BS, new Uint8Array(BS).fill(3));
      expect(equalBytes(await reader.read(0, BS * N), atA)).toBe(true);
      // a newer small copy with policy drop, and a reader on it
      await sv.createShadow({ name: 'c', onFull: 'drop', maxBytes: 8192 });
      const c = await pair(mode, 'c', sv, ns, volume);
      await sv.write(40 * BS, new Uint8Array(BS).fill(4));
      await c.reader.read(0, BS);
      await sv.write(50 * BS, new Uint8Array(8 * BS).fill(5)); // does not fit in c's 8 KiB: c is dropped
      await expect(c.reader.read(0, BS * N)).rejects.toMatchObject({ code: 'quota' });
      expect(equalBytes(await reader.read(0, BS * N), atA)).toBe(true);
      await sv.deleteShadow('a');
      // (a read served only from diff areas may still complete, with exact bytes; one that
      // touches the volume re-checks and learns of the deletion)
      await expect(reader.read(0, BS * N)).rejects.toMatchObject({ code: 'not-found' });
      await sv.close();
      await expect(c.reader.read(0, BS * N)).rejects.toMatchObject({ code: expect.stringMatching(/closed|quota/) });
      await reader.close();
      await c.reader.close();
      close();
      c.close();
    });
  }

  it('refuses an unknown copy', async () => {
    const ns = new MemoryNamespace();
    const volume = new MemoryStore(new Uint8Array(BS * 4));
    const sv = await ShadowVolume.open(new MemoryStore(volume.backing), ns, { blockSize: BS });
    await expect(pair('message', 'nope', sv, ns, volume)).rejects.toMatchObject({ code: 'not-found' });
    await sv.close();
  });
});
