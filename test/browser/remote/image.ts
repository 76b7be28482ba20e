import { prng } from '../../../src/bench/prng.js';

/** The test image: deterministic bytes that both the Node server set-up and the page can compute. */
export function testImage(size: number, version: number): Uint8Array {
  const out = new Uint8Array(size);
  const next = prng(version + 7);
  for (let i = 0; i < size; i++) out[i] = (next() * 256) | 0;
  // a zero region (known-zero blocks in the cache)
  out.fill(0, 64 * 1024, 96 * 1024);
  return out;
}

export const IMAGE_SIZE = 1024 * 1024 + 1000;

/** What the global set-up provides to the browser tests. */
export interface ImageServers {
  normal: string;
  slow: string;
  dropping: string;
  changing: string;
  /** GET `${control}/change` gives `changing` a new version; `${control}/stop-offline` closes `offline` */
  control: string;
  offline: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    imageServers: ImageServers;
  }
}
