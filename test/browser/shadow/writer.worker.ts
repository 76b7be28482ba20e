/**
 * The writer of the Chromium shadow stress test: a volume file in OPFS, its diff areas in an
 * OPFS directory, a shadow copy, then random overwrites as fast as it can until told to stop.
 * Readers (reader.worker.ts) are connected through MessagePorts the page hands over.
 */
import { blockSums, hammer } from '../../../src/bench/shadow-load.js';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { OpfsNamespace } from '../../../src/store/opfs.js';
import { loadKernels } from '../../../src/wasm/index.js';

let sv: ShadowVolume | null = null;
const stop = new Int32Array(1);

self.onmessage = async (e: MessageEvent) => {
  const m = e.data as { t: string; dir?: string; blocks?: number; blockSize?: number; shared?: boolean; rotateEvery?: number; maxRun?: number; port?: MessagePort };
  try {
    if (m.t === 'setup') {
      await loadKernels();
      await OpfsNamespace.destroy(m.dir!).catch(() => {});
      const bs = m.blockSize!;
      const content = new Uint8Array(bs * m.blocks!);
      for (let i = 0; i < content.length; i += 4096) crypto.getRandomValues(content.subarray(i, i + 4096));
      const volNs = await OpfsNamespace.open(`${m.dir}/vol`, { create: true });
      const store = await volNs.open('volume.raw', { create: true });
      await store.write(0, content);
      await store.flush();
      sv = await ShadowVolume.open(store, await OpfsNamespace.open(`${m.dir}/shadows`, { create: true }), { blockSize: bs, sharedMemory: m.shared });
      await sv.createShadow({ name: 'stress' });
      postMessage({ t: 'ready', sums: blockSums(content, bs) });
    } else if (m.t === 'serve') {
      sv!.serve(m.port!);
      postMessage({ t: 'served' });
    } else if (m.t === 'hammer') {
      const h = await hammer(sv!, { maxRun: m.maxRun ?? 4, seed: 5, stop, rotateEvery: m.rotateEvery, maxRotations: 20 });
      await sv!.close();
      postMessage({ t: 'hammered', ...h });
    } else if (m.t === 'stop') {
      Atomics.store(stop, 0, 1);
    }
  } catch (err) {
    postMessage({ t: 'error', message: String(err) });
  }
};
