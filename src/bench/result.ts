/** One line of benchmark output: our figure, a named peer's figure from the same run, and their ratio. */
export interface BenchResult {
  name: string;
  /** our figure, in `unit` (higher is better for throughput units) */
  ours: number;
  /** the peer's figure in the same unit, measured in the same run */
  peer: number;
  /** ours / peer for throughput units (so > 1 means we are faster) */
  ratio: number;
  unit: string;
  peerName: string;
  /** the ratio the issue asks for, if any */
  target?: number;
  met?: boolean;
  note?: string;
}

export function result(name: string, ours: number, peer: number, unit: string, peerName: string, target?: number, note?: string): BenchResult {
  const ratio = peer > 0 ? ours / peer : Number.NaN;
  const r: BenchResult = { name, ours: round(ours), peer: round(peer), ratio: round(ratio, 3), unit, peerName };
  if (target !== undefined) {
    r.target = target;
    r.met = ratio >= target;
  }
  if (note) r.note = note;
  return r;
}

function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Run `fn` repeatedly for about `ms` milliseconds (after one warm-up call); returns calls per second. */
export async function rate(fn: () => unknown | Promise<unknown>, ms = 400): Promise<number> {
  await fn();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    await fn();
    n++;
    t = performance.now();
  }
  return (n * 1000) / (t - t0);
}
