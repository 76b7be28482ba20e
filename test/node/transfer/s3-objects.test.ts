/**
 * The S3 backend against servers that misbehave (a plain node:http server on loopback playing
 * a broken or hostile S3: bodies longer than asked, ignored ranges, redirects, 5xx, listings
 * out of order, no conditional PUT, no DeleteObjects) and against the real test server for
 * what S3 itself does (openObjectStore with the AWS variables).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { openObjectStore } from '../../../src/transfer/open-objects.js';
import { checkEndpoint, S3ObjectStore } from '../../../src/transfer/s3-objects.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

interface Fake {
  endpoint: string;
  requests: { method: string; url: string; headers: IncomingMessage['headers'] }[];
  /** bytes written by endless answers before the client closed the connection */
  sent: { bytes: number; closed: boolean };
  close(): Promise<void>;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function fake(handler: Handler): Promise<Fake> {
  const requests: Fake['requests'] = [];
  const sent = { bytes: 0, closed: false };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      handler(req, res, Buffer.concat(chunks));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { endpoint: `http://127.0.0.1:${port}`, requests, sent, close: async () => {} };
}

/** Writes 64 KiB chunks until the client goes away (or 256 MiB, a bound for the test). */
function endless(res: ServerResponse, sent: Fake['sent'], first?: Buffer): void {
  const chunk = Buffer.alloc(64 << 10, 0x61);
  if (first) res.write(first);
  res.on('close', () => {
    sent.closed = true;
  });
  const pump = () => {
    while (!res.destroyed && sent.bytes < 256 << 20) {
      sent.bytes += chunk.length;
      if (!res.write(chunk)) {
        res.once('drain', pump);
        return;
      }
    }
    if (!res.destroyed) res.end();
  };
  pump();
}

function store(endpoint: string, extra: Partial<ConstructorParameters<typeof S3ObjectStore>[0]> = {}): S3ObjectStore {
  return new S3ObjectStore({ bucket: 'bkt', prefix: 'pre', endpoint, credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake-secret-key-0123456789' }, retryDelayMs: 1, ...extra });
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isStrataError(e)) return { code: e.code, message: e.message };
    return { code: 'other', message: String(e) };
  }
  throw new Error('expected a rejection');
}

describe('S3 backend: bodies are bounded by what was asked', () => {
  it('a 206 whose body runs past its Content-Range is cut at the range; the rest is never read', async () => {
    const f = await fake((_req, res) => {
      res.writeHead(206, { 'content-range': 'bytes 5-14/1000000000' });
      endless(res, f.sent);
    });
    const got = await store(f.endpoint).get('k', { offset: 5, length: 10 });
    expect(got).toEqual(new Uint8Array(10).fill(0x61));
    await expect.poll(() => f.sent.closed).toBe(true);
    expect(f.sent.bytes).toBeLessThan(64 << 20);
  });

  it('a 206 declaring a huge Content-Length is read only up to the range', async () => {
    const f = await fake((_req, res) => {
      // a lying header: 4 GiB announced; nothing is allocated by it
      res.writeHead(206, { 'content-range': 'bytes 0-3/4294967296', 'content-length': '4294967296' });
      endless(res, f.sent);
    });
    const got = await store(f.endpoint).get('k', { offset: 0, length: 4 });
    expect(got).toEqual(new Uint8Array(4).fill(0x61));
  });

  it('a server that ignores Range and sends the whole object: the range is cut out of it', async () => {
    const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
    const f = await fake((_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
    });
    const s = store(f.endpoint);
    expect(await s.get('k', { offset: 70_000, length: 5000 })).toEqual(new Uint8Array(data.subarray(70_000, 75_000)));
    expect(await s.get('k', { offset: 99_990, length: 5000 })).toEqual(new Uint8Array(data.subarray(99_990)));
    expect(await s.get('k', { offset: 200_000, length: 5 })).toEqual(new Uint8Array(0));
  });

  it('a 206 for another range than asked is refused (corrupt)', async () => {
    const f = await fake((_req, res) => {
      res.writeHead(206, { 'content-range': 'bytes 50-59/100' });
      res.end(Buffer.alloc(10));
    });
    expect((await rejection(store(f.endpoint).get('k', { offset: 10, length: 10 }))).code).toBe('corrupt');
  });

  it('a whole-object GET larger than maxObjectBytes is refused, by its header or as it streams', async () => {
    const f = await fake((req, res) => {
      if (req.url?.includes('declared')) {
        res.writeHead(200, { 'content-length': String(10 * 2 ** 30) });
        endless(res, f.sent);
        return;
      }
      res.writeHead(200); // chunked, no length
      endless(res, f.sent);
    });
    const s = store(f.endpoint, { maxObjectBytes: 1 << 20 });
    expect((await rejection(s.get('declared'))).code).toBe('invalid-argument');
    expect((await rejection(s.get('streamed'))).code).toBe('corrupt');
    await expect.poll(() => f.sent.closed).toBe(true);
    expect(f.sent.bytes).toBeLessThan(64 << 20);
  });

  it('a body shorter than its Content-Length is an error, not a short object', async () => {
    const f = await fake((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write(Buffer.alloc(10));
      res.destroy();
    });
    expect((await rejection(store(f.endpoint, { retries: 0 }).get('k'))).code).toBe('io');
  });
});

describe('S3 backend: redirects, retries, abort', () => {
  it('a redirect is not followed: the target gets nothing', async () => {
    const target = await fake((_req, res) => res.end('x'));
    const f = await fake((_req, res) => {
      res.writeHead(307, { location: `${target.endpoint}/bkt/pre/k` });
      res.end();
    });
    expect((await rejection(store(f.endpoint).get('k'))).code).toBe('untrusted');
    expect(target.requests).toHaveLength(0);
  });

  it('a redirect naming the bucket region tells the user to set AWS_REGION', async () => {
    const f = await fake((_req, res) => {
      res.writeHead(301, { 'x-amz-bucket-region': 'eu-west-3' });
      res.end();
    });
    const r = await rejection(store(f.endpoint).head('k'));
    expect(r.code).toBe('invalid-argument');
    expect(r.message).toContain('AWS_REGION=eu-west-3');
  });

  it('retries 5xx and 429 a bounded number of times, then succeeds or gives up', async () => {
    let n = 0;
    const f = await fake((_req, res) => {
      n++;
      if (n <= 2) {
        res.writeHead(n === 1 ? 503 : 429);
        res.end('<Error><Code>SlowDown</Code></Error>');
        return;
      }
      res.writeHead(200, { 'content-length': '3' });
      res.end('abc');
    });
    expect(await store(f.endpoint).get('k')).toEqual(new TextEncoder().encode('abc'));
    expect(n).toBe(3);

    const g = await fake((_req, res) => {
      res.writeHead(500);
      res.end('<Error><Code>InternalError</Code><Message>boom</Message></Error>');
    });
    const r = await rejection(store(g.endpoint, { retries: 2 }).put('k', new Uint8Array(1)));
    expect(r.code).toBe('io');
    expect(r.message).toContain('InternalError');
    expect(g.requests).toHaveLength(3);
  });

  it('a network failure is retried, then reported as io', async () => {
    const f = await fake((req) => req.socket.destroy());
    expect((await rejection(store(f.endpoint, { retries: 1 }).head('k'))).code).toBe('io');
    expect(f.requests).toHaveLength(2);
  });

  it('abort while the server is silent ends the call with aborted', async () => {
    const f = await fake(() => {});
    const c = new AbortController();
    const p = store(f.endpoint).get('k', undefined, c.signal);
    await expect.poll(() => f.requests.length).toBe(1);
    c.abort();
    expect((await rejection(p)).code).toBe('aborted');
  });
});

describe('S3 backend: listing, conditional PUT and batch delete on servers that differ', () => {
  const page = (keys: string[], next?: string) =>
    `<?xml version="1.0"?><ListBucketResult><IsTruncated>${next ? 'true' : 'false'}</IsTruncated>${next ? `<NextContinuationToken>${next}</NextContinuationToken>` : ''}${keys.map((k) => `<Contents><Key>${k}</Key><Size>1</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>`).join('')}</ListBucketResult>`;
  const list = async (s: S3ObjectStore, prefix = '') => {
    const out: string[] = [];
    for await (const o of s.list(prefix)) out.push(o.key);
    return out;
  };

  it('follows continuation tokens; skips keys outside the prefix or not allowed; unescapes XML', async () => {
    const f = await fake((req, res) => {
      const token = new URL(req.url!, 'http://x').searchParams.get('continuation-token');
      res.writeHead(200, { 'content-type': 'application/xml' });
      if (token === null) res.end(page(['pre/a', 'pre/b/../../etc', 'other/x', 'pre/c d'], 't+1/='));
      else if (token === 't+1/=') res.end(page(['pre/d@1', 'pre/e&amp;f', 'pre/g']));
      else res.end(page([]));
    });
    expect(await list(store(f.endpoint))).toEqual(['a', 'd@1', 'g']);
    expect(new URL(f.requests[0]!.url, 'http://x').searchParams.get('prefix')).toBe('pre/');
  });

  it('keys out of order, or a listing that repeats its token, are refused (corrupt)', async () => {
    const f = await fake((req, res) => {
      res.writeHead(200);
      res.end(req.url!.includes('continuation-token') ? page(['pre/z'], 'same') : page(['pre/b', 'pre/a']));
    });
    expect((await rejection(list(store(f.endpoint)))).code).toBe('corrupt');
    const g = await fake((_req, res) => {
      res.writeHead(200);
      res.end(page(['pre/a'], 'same'));
    });
    const s = store(g.endpoint);
    const r = await rejection(list(s));
    expect(r.code).toBe('corrupt');
    expect(g.requests.length).toBe(2);
  });

  it('conditional PUT: 412 means it exists; a server that refuses If-None-Match gets HEAD then PUT, with a warning', async () => {
    const stored = new Map<string, Buffer>();
    let refuse = false;
    const f = await fake((req, res, body) => {
      const key = req.url!;
      if (req.method === 'HEAD') {
        res.writeHead(stored.has(key) ? 200 : 404, { 'content-length': String(stored.get(key)?.length ?? 0) });
        res.end();
      } else if (req.method === 'PUT' && req.headers['if-none-match'] === '*' && refuse) {
        res.writeHead(501);
        res.end('<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>');
      } else if (req.method === 'PUT' && req.headers['if-none-match'] === '*' && key.endsWith('/raced')) {
        res.writeHead(412); // another writer got there between our HEAD and PUT
        res.end();
      } else {
        stored.set(key, body);
        res.writeHead(200);
        res.end();
      }
    });
    const warnings: string[] = [];
    const s = store(f.endpoint, { onWarning: (m) => warnings.push(m) });
    expect(await s.put('raced', new Uint8Array([1]), { ifAbsent: true })).toBe(false);
    expect(await s.put('new', new Uint8Array([1]), { ifAbsent: true })).toBe(true);
    expect(s.atomicIfAbsent).not.toBe(false);
    refuse = true;
    expect(await s.put('new2', new Uint8Array([2]), { ifAbsent: true })).toBe(true);
    expect(s.atomicIfAbsent).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/not atomic/);
    expect(await s.put('new2', new Uint8Array([3]), { ifAbsent: true })).toBe(false);
    expect(stored.get('/bkt/pre/new2')).toEqual(Buffer.from([2]));
    // the payload hash is signed, so a server that checks it detects a changed body
    const put = f.requests.find((r) => r.method === 'PUT')!;
    expect(put.headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('DeleteObjects in batches of 1000; a server without it gets single DELETEs; other errors fail', async () => {
    let batches = 0;
    const f = await fake((req, res, body) => {
      if (req.method === 'POST') {
        batches++;
        const n = (body.toString().match(/<Key>/g) ?? []).length;
        expect(n).toBeLessThanOrEqual(1000);
        expect(req.headers['x-amz-checksum-sha256']).toBeTruthy();
        res.writeHead(200);
        res.end('<DeleteResult><Error><Key>pre/k1</Key><Code>NoSuchKey</Code></Error></DeleteResult>');
        return;
      }
      res.writeHead(204);
      res.end();
    });
    const keys = Array.from({ length: 2500 }, (_, i) => `k${i}`);
    await store(f.endpoint).delete(keys);
    expect(batches).toBe(3);

    const singles: string[] = [];
    const g = await fake((req, res) => {
      if (req.method === 'POST') {
        res.writeHead(501);
        res.end('<Error><Code>NotImplemented</Code></Error>');
        return;
      }
      singles.push(req.url!);
      res.writeHead(404); // missing is fine
      res.end();
    });
    await store(g.endpoint).delete(['a', 'b', 'c']);
    expect(singles.sort()).toEqual(['/bkt/pre/a', '/bkt/pre/b', '/bkt/pre/c']);

    const h = await fake((_req, res) => {
      res.writeHead(200);
      res.end('<DeleteResult><Error><Key>pre/a</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>');
    });
    expect((await rejection(store(h.endpoint).delete(['a', 'b']))).code).toBe('permission-denied');
  });
});

describe('S3 backend: endpoints', () => {
  it('plain http is allowed only to loopback; credentials, queries and other schemes are refused', () => {
    expect(() => checkEndpoint('http://127.0.0.1:9000')).not.toThrow();
    expect(() => checkEndpoint('http://localhost:9000')).not.toThrow();
    expect(() => checkEndpoint('http://[::1]:9000')).not.toThrow();
    expect(() => checkEndpoint('https://s3.example.com')).not.toThrow();
    for (const [url, code] of [
      ['http://s3.example.com', 'untrusted'],
      ['http://10.0.0.5:9000', 'untrusted'],
      ['http://127.0.0.1.example.com', 'untrusted'],
      ['https://user:pass@s3.example.com', 'invalid-argument'],
      ['https://s3.example.com/?x=1', 'invalid-argument'],
      ['ftp://s3.example.com', 'invalid-argument'],
      ['not a url', 'invalid-argument'],
    ] as const) {
      let got = 'none';
      try {
        checkEndpoint(url);
      } catch (e) {
        got = isStrataError(e) ? e.code : 'other';
      }
      expect(got, url).toBe(code);
    }
  });

  it('path style with an endpoint (and its path), virtual-host style on AWS', async () => {
    const f = await fake((_req, res) => {
      res.writeHead(404);
      res.end();
    });
    await store(`${f.endpoint}/gateway`).head('x/y');
    expect(f.requests[0]!.url).toBe('/gateway/bkt/pre/x/y');
    const aws = new S3ObjectStore({ bucket: 'my-bucket', region: 'eu-west-3', fetch: async (input) => new Response(String(input), { status: 404 }) });
    expect(aws.description).toBe('s3://my-bucket');
    let seen = '';
    const spy = new S3ObjectStore({ bucket: 'my-bucket', prefix: 'p', region: 'eu-west-3', fetch: async (input) => ((seen = String(input)), new Response(null, { status: 404 })) });
    await spy.head('k');
    expect(seen).toBe('https://my-bucket.s3.eu-west-3.amazonaws.com/p/k');
  });
});

describe('S3 backend against the S3 test server, configured from the environment', () => {
  let server: TestS3Server;
  beforeAll(async () => {
    server = await startS3Server();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('openObjectStore(s3://bucket/prefix) with the AWS variables puts, gets and lists', async () => {
    const s = await openObjectStore(`s3://${server.bucket}/env/test/`, { env: { ...server.env, HOME: '/nonexistent' } });
    expect(s.description).toContain(`s3://${server.bucket}/env/test`);
    expect(await s.put('a/b', new Uint8Array([1, 2, 3]))).toBe(true);
    expect(await s.get('a/b', { offset: 1, length: 5 })).toEqual(new Uint8Array([2, 3]));
    const keys: string[] = [];
    for await (const o of s.list('')) keys.push(o.key);
    expect(keys).toEqual(['a/b']);
    // AWS_ENDPOINT_URL is the fallback of AWS_ENDPOINT_URL_S3
    const { AWS_ENDPOINT_URL_S3: ep, ...rest } = server.env;
    const t = await openObjectStore(`s3://${server.bucket}/env/test`, { env: { ...rest, AWS_ENDPOINT_URL: ep!, HOME: '/nonexistent' } });
    expect(await t.get('a/b')).toEqual(new Uint8Array([1, 2, 3]));
  });

  it('a missing bucket is not-found with a hint', async () => {
    const s = await openObjectStore('s3://no-such-bucket/x', { env: { ...server.env, HOME: '/nonexistent' } });
    const r = await rejection(s.put('k', new Uint8Array(1)));
    expect(r.code).toBe('not-found');
    expect(r.message).toContain('does not exist');
  });
});

describe('S3 and R2 backends run outside Node', () => {
  it('import no node: module, directly or through their imports (browsers and Workers load them)', async () => {
    const { readFileSync } = await import('node:fs');
    const { dirname, join } = await import('node:path');
    const { fileURLToPath } = await import('node:url');
    const src = join(dirname(fileURLToPath(import.meta.url)), '../../../src');
    const seen = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/^(?:import|export)[^;]*?from '([^']+)'/gms)) {
        const spec = m[1]!;
        expect(spec.startsWith('node:'), `${file} imports ${spec}`).toBe(false);
        if (spec.startsWith('.')) visit(join(dirname(file), spec.replace(/\.js$/, '.ts')));
      }
    };
    visit(join(src, 'transfer/s3-objects.ts'));
    visit(join(src, 'transfer/r2-objects.ts'));
    expect(seen.size).toBeGreaterThan(5);
  });
});
