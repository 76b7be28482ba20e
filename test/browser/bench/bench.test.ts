import * as Comlink from 'comlink';
import { expect, it } from 'vitest';
import type { BenchResult } from '../../../src/bench/result.js';

// `npm run bench:browser` sets VITE_STRATADISK_BENCH=1 for full-size runs; `npm test` runs the
// quick, shape-only version. No timing is asserted.
const full = (import.meta as unknown as { env: Record<string, string | undefined> }).env.VITE_STRATADISK_BENCH === '1';

it('browser benchmarks (kernels in Chromium; OPFS and IndexedDB volumes vs raw peers) report well-formed figures', async () => {
  const worker = new Worker(new URL('./bench.worker.ts', import.meta.url), { type: 'module' });
  const api = Comlink.wrap<{ run(o: { quick: boolean; groups: string[] }): Promise<BenchResult[]> }>(worker);
  try {
    const results = await api.run({ quick: !full, groups: ['kernels', 'storage'] });
    for (const r of results) console.log(JSON.stringify({ ...r, platform: 'chromium' }));
    expect(results.length).toBeGreaterThanOrEqual(10);
    for (const r of results) {
      expect(Number.isFinite(r.ours) && r.ours > 0, r.name).toBe(true);
      expect(Number.isFinite(r.peer) && r.peer > 0, r.name).toBe(true);
    }
    expect(results.some((r) => r.name.startsWith('OPFS'))).toBe(true);
    expect(results.some((r) => r.name.startsWith('IndexedDB'))).toBe(true);
  } finally {
    worker.terminate();
  }
}, full ? 1_800_000 : 300_000);
