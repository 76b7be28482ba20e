/**
 * The ObjectStore conformance suite on every backend this machine can run: memory, S3 (against
 * a SigV4-checking S3 server on loopback) and R2 (workerd's R2 through miniflare).
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { R2ObjectStore } from '../../../src/transfer/r2-objects.js';
import { S3ObjectStore } from '../../../src/transfer/s3-objects.js';
import { startMiniflareR2, type TestR2 } from '../helpers/miniflare-r2.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { objectStoreConformance } from './object-store-conformance.js';

let run = 0;

objectStoreConformance('memory', async () => ({ store: new MemoryObjectStore(), cleanup: async () => {} }));

describe('S3 (s3rver)', () => {
  let server: TestS3Server;
  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    await server?.stop();
  });
  // each test gets its own prefix in the one bucket, so stores start empty
  objectStoreConformance('s3', async () => {
    const store = new S3ObjectStore({
      bucket: server.bucket,
      prefix: `run${++run}/p`,
      endpoint: server.endpoint,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      retryDelayMs: 10,
    });
    return { store, cleanup: async () => {} };
  });
});

describe('R2 (miniflare)', () => {
  let r2: TestR2;
  beforeAll(async () => {
    r2 = await startMiniflareR2();
  });
  afterAll(async () => {
    await r2?.stop();
  });
  // miniflare's R2 proxy takes some 20–30 ms per put on a loaded machine (1003 puts: ~30 s), so
  // pagination is checked with 100-key pages and 250 keys
  objectStoreConformance('r2', async () => ({ store: new R2ObjectStore(r2.bucket, { prefix: `run${++run}`, name: 'B', listPageSize: 100 }), cleanup: async () => {} }), { manyKeys: 250 });
});
