/**
 * workerd's R2 emulation through miniflare, for tests: a Miniflare with one R2 bucket binding
 * and a do-nothing worker; `bucket` is miniflare's Node proxy of that binding (the calls run in
 * workerd). Storage is in memory and goes away with `stop()`.
 */
import { Miniflare } from 'miniflare';
import type { R2BucketLike } from '../../../src/transfer/r2-objects.js';

export interface TestR2 {
  mf: Miniflare;
  bucket: R2BucketLike;
  stop(): Promise<void>;
}

export async function startMiniflareR2(binding = 'B'): Promise<TestR2> {
  const mf = new Miniflare({ modules: true, script: 'export default { fetch() { return new Response(null, { status: 404 }); } }', r2Buckets: [binding] });
  const bucket = (await mf.getR2Bucket(binding)) as unknown as R2BucketLike;
  return {
    mf,
    bucket,
    async stop() {
      await mf.dispose();
    },
  };
}
