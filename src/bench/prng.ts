/** xorshift32 as a [0, 1) generator: tiny, seeded and repeatable; benchmarks and fuzzers need repeatable data, not good randomness. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
