/** Volume I/O benchmarks (work in progress). */
import type { BenchResult } from './result.js';

export interface VolumeBenchOptions {
  quick?: boolean;
  onResult?: (r: BenchResult) => void;
}

export async function benchChain(_opts: VolumeBenchOptions = {}): Promise<BenchResult[]> {
  return [];
}

export async function benchSequential(_opts: VolumeBenchOptions = {}): Promise<BenchResult[]> {
  return [];
}
