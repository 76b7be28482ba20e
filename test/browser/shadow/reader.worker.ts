/** A passive reader of the Chromium shadow stress test: OPFS opened read-only, no lock taken. */
import { verifyLoop } from '../../../src/bench/shadow-load.js';
import { ShadowReader } from '../../../src/shadow/index.js';
import { OpfsNamespace } from '../../../src/store/opfs.js';

self.onmessage = async (e: MessageEvent) => {
  const m = e.data as { dir: string; port: MessagePort; mode: 'shared' | 'message'; sums: BigUint64Array; blockReads: number; maxRun: number; seed: number; recheck: boolean; stopAfterMismatches?: number };
  try {
    const volume = await (await OpfsNamespace.open(`${m.dir}/vol`, { readOnly: true })).open('volume.raw', { readOnly: true });
    const areas = await OpfsNamespace.open(`${m.dir}/shadows`, { readOnly: true });
    const reader = await ShadowReader.connect(m.port, { copy: 'stress', volume, areas, mode: m.mode, recheck: m.recheck });
    postMessage({ t: 'ready' });
    const result = await verifyLoop(reader, m.sums, { blockReads: m.blockReads, maxRun: m.maxRun, seed: m.seed, stopAfterMismatches: m.stopAfterMismatches });
    await reader.close();
    postMessage({ t: 'done', result });
  } catch (err) {
    postMessage({ t: 'error', message: String(err), code: (err as { code?: string }).code });
  }
};
