/**
 * ObjectNamespace (src/transfer/object-namespace.ts): the shared Store and namespace conformance
 * suites over a memory object store (tiny parts, so every case crosses part boundaries, and the
 * default 4 MiB parts) and over the real S3 test server; then what is particular to it: parts
 * and records in the object store, holes, stale parts after a shrink, a crash inside a flush,
 * the buffer bound, damaged records, and the writer lease.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultObjectStore } from '../../../src/transfer/fault-objects.js';
import { MemoryObjectStore } from '../../../src/transfer/memory-objects.js';
import { LOCK, NAMES, ObjectNamespace, PARTS } from '../../../src/transfer/object-namespace.js';
import { openObjectStore } from '../../../src/transfer/open-objects.js';
import type { ObjectStore } from '../../../src/transfer/object-store.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { equalBytes, errorCode, namespaceConformance, pattern, prng, storeConformance } from './conformance.js';

function suites(label: string, objects: () => Promise<ObjectStore>, partSize?: number): void {
  const opts = partSize === undefined ? {} : { partSize };
  storeConformance(`ObjectNamespace store (${label})`, async () => {
    const o = await objects();
    const ns = new ObjectNamespace(o, opts);
    return {
      open: () => ns.open('disk', { create: true }),
      reopen: () => new ObjectNamespace(o, opts).open('disk'),
      openReadOnly: () => new ObjectNamespace(o, { ...opts, readOnly: true }).open('disk'),
      cleanup: async () => {},
      largeOffsets: true,
    };
  });
  namespaceConformance(`ObjectNamespace (${label})`, async () => {
    const o = await objects();
    return {
      namespace: new ObjectNamespace(o, opts),
      reopen: async () => new ObjectNamespace(o, opts),
      readOnly: async () => new ObjectNamespace(o, { ...opts, readOnly: true }),
      cleanup: async () => {},
    };
  });
}

suites('memory, 512-byte parts', async () => new MemoryObjectStore(), 512);
suites('memory, default parts', async () => new MemoryObjectStore());

describe('over the S3 test server', () => {
  let s3: TestS3Server;
  let n = 0;
  beforeAll(async () => {
    s3 = await startS3Server();
  }, 60_000);
  afterAll(async () => {
    await s3?.stop();
  });
  suites('S3, 4 KiB parts', () => openObjectStore(`s3://${s3.bucket}/conf-${n++}`, { env: s3.env }), 4096);
});
