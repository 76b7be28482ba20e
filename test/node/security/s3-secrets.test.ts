/**
 * S3 credentials: where they may come from (the environment or a 0600 file, never a URL), that
 * a wrong one is refused by a server that checks SigV4, and that no secret ever appears in a
 * message, not even when the server echoes it back.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import type { ObjectStore } from '../../../src/transfer/object-store.js';
import { openObjectStore } from '../../../src/transfer/open-objects.js';
import { parseS3Url, s3CredentialsFromEnv } from '../../../src/transfer/s3-env.js';
import { S3ObjectStore } from '../../../src/transfer/s3-objects.js';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isStrataError(e)) return { code: e.code, message: e.message };
    return { code: 'other', message: String(e) };
  }
  throw new Error('expected a rejection');
}

async function drain(s: ObjectStore): Promise<void> {
  for await (const _ of s.list('')) void _;
}

let dir: string;
let server: TestS3Server;
beforeAll(async () => {
  server = await startS3Server();
});
afterAll(async () => {
  await server?.stop();
});
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function credentialsFile(mode: number, text: string): string {
  dir = mkdtempSync(join(tmpdir(), 'stratadisk-s3cred-'));
  const file = join(dir, 'credentials');
  writeFileSync(file, text, { mode });
  chmodSync(file, mode);
  return file;
}

describe('S3 credentials', () => {
  it('a wrong secret is refused by the server (SigV4 checked): permission-denied, no secret in any message', async () => {
    const wrong = 'wrong-secret-Zq8Xv2Lm4Np6Rt8Vw0Yz';
    const env = { ...server.env, AWS_SECRET_ACCESS_KEY: wrong, HOME: '/nonexistent' };
    const s = await openObjectStore(`s3://${server.bucket}/sec`, { env });
    for (const op of [() => s.put('k', new Uint8Array(1)), () => s.get('k'), () => s.get('k', { offset: 0, length: 1 }), () => s.head('k'), () => drain(s), () => s.delete(['a', 'b'])]) {
      const r = await rejection(op());
      expect(r.code).toBe('permission-denied');
      expect(r.message).not.toContain(wrong);
      expect(r.message).not.toContain(server.secretAccessKey);
    }
    const r = await rejection(s.put('k', new Uint8Array(1)));
    expect(r.message).toMatch(/SignatureDoesNotMatch/);
    expect(r.message).toMatch(/secret access key/);
    // the right secret works (the refusal above was the signature, not the server)
    const ok = await openObjectStore(`s3://${server.bucket}/sec`, { env: { ...server.env, HOME: '/nonexistent' } });
    expect(await ok.put('k', new Uint8Array([7]))).toBe(true);
  });

  it('an unknown access key is refused too', async () => {
    const s = await openObjectStore(`s3://${server.bucket}/sec`, { env: { ...server.env, AWS_ACCESS_KEY_ID: 'AKIANOSUCHKEY', HOME: '/nonexistent' } });
    expect((await rejection(s.put('k', new Uint8Array(1)))).code).toBe('permission-denied');
  });

  it('a secret the server echoes back in its error is redacted', async () => {
    const secret = 'echoed-secret-3f9a8b7c6d5e4f3a2b1c';
    const srv: Server = createServer((_req, res) => {
      res.writeHead(403);
      res.end(`<Error><Code>AccessDenied</Code><Message>denied for ${secret}</Message></Error>`);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const s = new S3ObjectStore({ bucket: 'bkt', endpoint: `http://127.0.0.1:${(srv.address() as { port: number }).port}`, credentials: { accessKeyId: 'AKIAX', secretAccessKey: secret } });
      const r = await rejection(s.get('k'));
      expect(r.code).toBe('permission-denied');
      expect(r.message).toContain('[redacted]');
      expect(r.message).not.toContain(secret);
    } finally {
      srv.closeAllConnections();
      await new Promise((r) => srv.close(r));
    }
  });

  it('credentials from a 0600 file (AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE) work', async () => {
    const file = credentialsFile(0o600, `[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = not-this-one-0000000000\n\n[profile test]\n# the test server's key\naws_access_key_id=${server.accessKeyId}\naws_secret_access_key = ${server.secretAccessKey}\n`);
    const env = { AWS_ENDPOINT_URL_S3: server.endpoint, AWS_SHARED_CREDENTIALS_FILE: file, AWS_PROFILE: 'test', HOME: '/nonexistent' };
    const s = await openObjectStore(`s3://${server.bucket}/file`, { env });
    expect(await s.put('k', new Uint8Array([1]))).toBe(true);
    expect(await s.get('k')).toEqual(new Uint8Array([1]));
    const r = await rejection(openObjectStore(`s3://${server.bucket}/file`, { env: { ...env, AWS_PROFILE: 'missing' } }));
    expect(r.code).toBe('invalid-argument');
    expect(r.message).toContain('[missing]');
  });

  it('a credentials file others may read (0644), or a symlink to one, is refused before any request; the secret is not in the message', async () => {
    const secret = 'file-secret-a1b2c3d4e5f6a7b8c9d0';
    const file = credentialsFile(0o644, `[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = ${secret}\n`);
    const r = await rejection(openObjectStore(`s3://${server.bucket}/file`, { env: { AWS_ENDPOINT_URL_S3: server.endpoint, AWS_SHARED_CREDENTIALS_FILE: file } }));
    expect(r.code).toBe('invalid-argument');
    expect(r.message).toMatch(/chmod 600/);
    expect(r.message).not.toContain(secret);
    chmodSync(file, 0o600);
    const link = join(dir, 'link');
    symlinkSync(file, link);
    expect((await rejection(openObjectStore(`s3://${server.bucket}/file`, { env: { AWS_SHARED_CREDENTIALS_FILE: link } }))).code).toBe('invalid-argument');
    // the default ~/.aws/credentials is checked the same way when it exists
    const home = mkdtempSync(join(dir, 'home-'));
    const aws = join(home, '.aws');
    mkdirSync(aws);
    writeFileSync(join(aws, 'credentials'), `[default]\naws_access_key_id = A\naws_secret_access_key = ${secret}\n`, { mode: 0o644 });
    chmodSync(join(aws, 'credentials'), 0o644);
    expect((await rejection(s3CredentialsFromEnv({ HOME: home }))).code).toBe('invalid-argument');
    // and without any file or variable there are simply no credentials
    expect(await s3CredentialsFromEnv({ HOME: join(dir, 'nobody') })).toBeUndefined();
  });

  it('credentials never come from the URL; half a key pair is refused', async () => {
    const r = await rejection((async () => parseS3Url('s3://AKIA:url-secret-0123456789@bucket/x'))());
    expect(r.code).toBe('invalid-argument');
    expect(r.message).not.toContain('url-secret-0123456789');
    expect((await rejection(s3CredentialsFromEnv({ AWS_ACCESS_KEY_ID: 'AKIA' }))).code).toBe('invalid-argument');
    expect((await rejection(s3CredentialsFromEnv({ AWS_SECRET_ACCESS_KEY: 'only-the-secret-123456' }))).code).toBe('invalid-argument');
  });

  it('plain http to a host that is not loopback is refused before anything is sent', async () => {
    const r = await rejection(openObjectStore('s3://bucket/x', { env: { AWS_ENDPOINT_URL_S3: 'http://s3.example.com:9000', AWS_ACCESS_KEY_ID: 'AKIA', AWS_SECRET_ACCESS_KEY: 'a-secret-that-stays-home-123' } }));
    expect(r.code).toBe('untrusted');
    expect(r.message).toMatch(/https/);
  });
});
