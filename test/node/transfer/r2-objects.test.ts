/**
 * The R2 adapter on workerd's R2 (miniflare): what R2 does differently from S3 (conditional
 * put is atomic; ranges at or past the end are refused by R2 and answered from head here).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { R2ObjectStore, type R2BucketLike } from '../../../src/transfer/r2-objects.js';
import { startMiniflareR2, type TestR2 } from '../helpers/miniflare-r2.js';

describe('R2 adapter (miniflare)', () => {
  let r2: TestR2;
  beforeAll(async () => {
    r2 = await startMiniflareR2();
  });
  afterAll(async () => {
    await r2?.stop();
  });

  it('ifAbsent is atomic: of concurrent conditional puts exactly one wins', async () => {
    const s = new R2ObjectStore(r2.bucket, { prefix: 'atomic' });
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(Array.from({ length: 4 }, (_, i) => s.put(`k${round}`, new Uint8Array([i]), { ifAbsent: true })));
      expect(results.filter((x) => x)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect(await s.get(`k${round}`)).toEqual(new Uint8Array([winner]));
    }
  });

  it('keys live under the prefix in the bucket; keys outside it or not allowed are not listed', async () => {
    const s = new R2ObjectStore(r2.bucket, { prefix: 'img/a' });
    await s.put('x/y', new Uint8Array([1]));
    expect(await r2.bucket.head('img/a/x/y')).not.toBeNull();
    await r2.bucket.put('img/a/bad key', new Uint8Array(1));
    await r2.bucket.put('img/ab', new Uint8Array(1));
    const keys: string[] = [];
    for await (const o of s.list('')) keys.push(o.key);
    expect(keys).toEqual(['x/y']);
  });

  it('a binding that returns more bytes than the range asked is refused', async () => {
    const lying: R2BucketLike = {
      ...r2.bucket,
      get: async () => ({ key: 'k', size: 100, uploaded: new Date(), arrayBuffer: async () => new ArrayBuffer(50) }),
      head: async () => ({ key: 'k', size: 100, uploaded: new Date() }),
    } as R2BucketLike;
    const s = new R2ObjectStore(lying);
    await expect(s.get('k', { offset: 0, length: 10 })).rejects.toMatchObject({ code: 'corrupt' });
  });
});
