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
  /** with paired rounds (see pairedResult): the lowest and highest per-round ratio */
  ratioMin?: number;
  ratioMax?: number;
  rounds?: number;
  /** CPU seconds (user+system, every thread) per GiB of data, medians over the rounds: ours and the peer's */
  oursCpuPerGiB?: number;
  peerCpuPerGiB?: number;
  /** the machine's 1-minute load average when the measurement started and ended */
  load?: [number, number];
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

/**
 * A result from paired rounds: in round i ours[i] and peer[i] ran back to back, so a change in
 * the machine's load (it is shared) hits both. `ours` and `peer` are the medians of each side;
 * `ratio` is the median of the per-round ratios, with their range in ratioMin/ratioMax.
 */
export function pairedResult(name: string, ours: number[], peer: number[], unit: string, peerName: string, target?: number, note?: string): BenchResult {
  const ratios = ours.map((o, i) => (peer[i]! > 0 ? o / peer[i]! : Number.NaN));
  const r = result(name, median(ours), median(peer), unit, peerName, undefined, note);
  const ratio = median(ratios);
  r.ratio = round(ratio, 3);
  if (target !== undefined) {
    r.target = target;
    r.met = ratio >= target;
  }
  r.ratioMin = round(Math.min(...ratios), 3);
  r.ratioMax = round(Math.max(...ratios), 3);
  r.rounds = ratios.length;
  return r;
}

/**
 * Run each side once per round, in alternating order (forward, then reversed), so that every side
 * meets the machine's drift from both ends; returns each side's figures by round.
 */
export async function runPairedRounds<T>(sides: readonly (() => Promise<T>)[], rounds: number): Promise<T[][]> {
  const figures: T[][] = sides.map(() => []);
  for (let round = 0; round < rounds; round++) {
    const order = sides.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) figures[i]!.push(await sides[i]!());
  }
  return figures;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
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
