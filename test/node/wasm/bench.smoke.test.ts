import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { benchKernels } from '../../../src/bench/kernels.js';

describe('benchKernels', () => {
  it('returns well-formed results (quick mode; no timing thresholds)', async () => {
    const results = await benchKernels({ quick: process.env.STRATADISK_BENCH !== '1' });
    if (process.env.STRATADISK_BENCH === '1') console.log(JSON.stringify(results, null, 1));
    expect(results.length).toBeGreaterThanOrEqual(7);
    const names = results.map((r) => r.name);
    expect(names).toContain('blake3, 64 KiB chunks');
    expect(names).toContain('blake3, 64 KiB chunks in a WasmBuffer');
    if (existsSync('/usr/bin/b3sum')) {
      expect(names).toContain('blake3, 64 KiB chunks vs native b3sum, 1 thread');
      expect(names).toContain('blake3, 64 KiB chunks vs native b3sum, default threads');
    }
    for (const r of results) {
      expect(typeof r.name).toBe('string');
      expect(Number.isFinite(r.ours) && r.ours > 0).toBe(true);
      expect(Number.isFinite(r.peer) && r.peer > 0).toBe(true);
      expect(Number.isFinite(r.ratio) && r.ratio > 0).toBe(true);
    }
  });
});
