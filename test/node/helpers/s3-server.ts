/**
 * An S3-compatible server for tests: `@20minutes/s3rver` (a maintained fork of s3rver, from
 * npm) in a child process on 127.0.0.1, a free port, data in a fresh temporary directory, one
 * bucket, and a key pair of its own (the built-in S3RVER key is revoked).
 *
 * Why this server: it verifies SigV4 signatures (a wrong secret gets 403
 * SignatureDoesNotMatch), where s3rver 3.7.1 accepts any V4 signature and so proves nothing
 * about signing. What it does not do (and the tests do not rely on): check the payload hash
 * against the body, honour `If-None-Match: *` on PUT (conditional writes are not atomic
 * there), refuse unsigned requests. s3-server-child.cjs fixes its listing order (see there).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface TestS3Server {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** the environment a client needs: endpoint, region, credentials */
  env: Record<string, string>;
  stop(): Promise<void>;
}

const CHILD = fileURLToPath(new URL('./s3-server-child.cjs', import.meta.url));

export async function startS3Server(bucket = 'stratadisk-test'): Promise<TestS3Server> {
  const dir = mkdtempSync(join(tmpdir(), 'stratadisk-s3-'));
  const accessKeyId = `AKIATEST${randomBytes(6).toString('hex').toUpperCase()}`;
  const secretAccessKey = randomBytes(30).toString('base64url');
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', CHILD], {
    env: { ...process.env, S3_TEST_DIR: dir, S3_TEST_BUCKET: bucket, S3_TEST_KEY_ID: accessKeyId, S3_TEST_SECRET: secretAccessKey },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      try {
        resolve((JSON.parse(line) as { port: number }).port);
      } catch (e) {
        reject(e);
      }
    });
    child.once('exit', (code) => reject(new Error(`the S3 test server exited (${code}): ${stderr}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    env: { AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
