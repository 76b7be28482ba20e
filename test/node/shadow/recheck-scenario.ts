/**
 * The race the shadow reader's re-check closes, forced rather than hoped for (used by the Node
 * stress test and by test/browser/shadow/recheck.test.ts): a reader finds block 5 not preserved
 * and starts reading it from the volume; a gate on the reader's volume store holds that read
 * while the writer overwrites block 5 and commits (publishes the block, then writes the volume);
 * then the read goes on. With the re-check the reader looks at the bits again and returns the
 * preserved old bytes; without it, the new bytes: a mismatch. Memory stores, so the gate alone
 * fixes the order (no timing). `channel` makes the platform's MessageChannel.
 */
import { expect } from 'vitest';
import type { ShadowCopyReader } from '../../../src/shadow/read-path.js';
import { ShadowReader, ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryBacking, MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { loadKernels } from '../../../src/wasm/index.js';
import { Rng, equalBytes } from '../helpers/random.js';
import { Gate, GatedStore } from './gated-store.js';

export type RecheckMode = 'shared' | 'message' | 'in-process';

interface Port {
  close(): void;
}

export async function recheckScenario<P extends Port>(mode: RecheckMode, recheck: boolean, channel: () => { port1: P; port2: P }): Promise<void> {
  const BS = 512, N = 32;
  await loadKernels();
  const old = new Rng(61).bytes(BS * N);
  const backing = new MemoryBacking(old.slice());
  const ns = new MemoryNamespace();
  const writerVolume = new GatedStore(new MemoryStore(backing), 'writer volume');
  const sv = await ShadowVolume.open(writerVolume, ns, { blockSize: BS, sharedMemory: mode === 'shared' });
  await sv.createShadow({ name: 'a' });
  const ch = channel();
  const stopServe = sv.serve(ch.port1 as never);
  let readerVolume: GatedStore;
  let reader: ShadowCopyReader;
  if (mode === 'in-process') {
    readerVolume = writerVolume;
    reader = sv.openShadow('a', { recheck });
  } else {
    readerVolume = new GatedStore(new MemoryStore(backing, { readOnly: true }), 'reader volume');
    reader = await ShadowReader.connect(ch.port2 as never, { copy: 'a', volume: readerVolume, areas: new MemoryNamespace({ files: ns.files, readOnly: true }), mode, recheck });
  }
  try {
    const gate = new Gate();
    readerVolume.beforeRead = () => {
      readerVolume.beforeRead = null;
      return gate.wait();
    };
    const read = reader.read(5 * BS, BS);
    await gate.reached; // block 5 was not preserved when the reader looked
    const fresh = new Uint8Array(BS).fill(0xee);
    await sv.write(5 * BS, fresh);
    await sv.flush(); // published, then written to the volume
    expect(backing.buf.subarray(5 * BS, 6 * BS)).toEqual(fresh);
    gate.open();
    const got = await read;
    if (recheck) {
      expect(got).toEqual(old.subarray(5 * BS, 6 * BS));
      expect(reader.stats.rechecked).toBe(1);
      // with the re-check, any later read is right too
      expect(equalBytes(await reader.read(0, BS * N), old)).toBe(true);
    } else {
      expect(got).toEqual(fresh);
    }
  } finally {
    await reader.close();
    stopServe();
    ch.port1.close();
    ch.port2.close();
    await sv.close();
  }
}
