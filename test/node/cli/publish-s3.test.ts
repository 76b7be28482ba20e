/**
 * Publish to an S3-compatible server and serve from it, as a user runs it from a shell: the
 * stratadisk processes get the endpoint and credentials from the AWS environment variables only
 * (a SigV4-checking S3 server on loopback, test/node/helpers/s3-server.ts).
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { MiB, pattern, tempDir } from './harness.js';

const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');
const run = promisify(execFile);

describe('publish to s3:// and serve-edge from it (CLI processes, AWS environment)', () => {
  const t = tempDir();
  let s3: TestS3Server;
  let env: NodeJS.ProcessEnv;
  const vol = join(t.dir, 'vm');
  const url = 's3://stratadisk-test/images';
  let model: Uint8Array;

  beforeAll(async () => {
    s3 = await startS3Server();
    env = { ...process.env, ...s3.env };
    await run(process.execPath, [CLI, 'create', vol, '--size', '8M']);
    model = new Uint8Array(8 * MiB);
    model.set(pattern(3 * MiB, 7), 1 * MiB);
    model.set(pattern(64 * 1024, 9), 6 * MiB + 4096);
    const f = join(t.dir, 'in.raw');
    writeFileSync(f, model);
    await run(process.execPath, [CLI, 'import', vol, f]);
  }, 120_000);

  afterAll(async () => {
    await s3?.stop();
    t.cleanup();
  });

  it('publishes, lists the version, and serves the same bytes; a wrong secret is refused and never printed', { timeout: 180_000 }, async () => {
    const published = await run(process.execPath, [CLI, 'publish', vol, '--to', url, '--json'], { env });
    const r = JSON.parse(published.stdout) as { contentId: string; chunksUploaded: number };
    expect(r.contentId).toMatch(/^[0-9a-f]{64}$/);
    expect(r.chunksUploaded).toBeGreaterThan(0);

    const again = JSON.parse((await run(process.execPath, [CLI, 'publish', vol, '--to', url, '--json'], { env })).stdout) as { contentId: string; bytesUploaded: number; unchanged: boolean };
    expect(again).toMatchObject({ contentId: r.contentId, unchanged: true });

    const versions = await run(process.execPath, [CLI, 'versions', url], { env });
    expect(versions.stdout).toContain(r.contentId);

    const edge = spawn(process.execPath, [CLI, 'serve-edge', url], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stderr = '';
      edge.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const [first] = (await Promise.race([
        once(edge.stdout!, 'data'),
        once(edge, 'exit').then(() => {
          throw new Error(`serve-edge exited before it printed its URL: ${stderr}`);
        }),
      ])) as [Buffer];
      const base = first.toString().trim().replace(/\/$/, '');
      const whole = await fetch(`${base}/vm/latest`);
      expect(whole.status).toBe(200);
      expect(whole.headers.get('etag')).toBe(`"${r.contentId}"`);
      expect(Buffer.compare(Buffer.from(await whole.arrayBuffer()), Buffer.from(model))).toBe(0);
      const part = await fetch(`${base}/vm/@${r.contentId}`, { headers: { range: 'bytes=1048570-1048600' } });
      expect(part.status).toBe(206);
      expect(new Uint8Array(await part.arrayBuffer())).toEqual(model.subarray(1048570, 1048601));
    } finally {
      edge.kill('SIGTERM');
      await once(edge, 'exit');
    }

    const wrong = 'wrong-secret-0123456789abcdef';
    const refused = await run(process.execPath, [CLI, 'versions', url], { env: { ...env, AWS_SECRET_ACCESS_KEY: wrong } }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toMatch(/permission-denied/);
    expect(refused?.stderr).not.toContain(wrong);
    expect(refused?.stderr).not.toContain(s3.secretAccessKey);
  });
});
