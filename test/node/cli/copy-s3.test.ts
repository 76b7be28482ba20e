/**
 * `stratadisk copy` to and from s3://BUCKET/PREFIX as a user runs it (CLI processes, the
 * endpoint and credentials from the AWS environment only, a SigV4-checking S3 server on
 * loopback): a round trip, a second copy of a grown chain that re-links what is there, the
 * read-only commands on an s3:// volume, a command that writes refused, and a wrong secret
 * refused and never printed.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Server, type TestS3Server } from '../helpers/s3-server.js';
import { MiB, pattern, tempDir } from './harness.js';

const CLI = join(import.meta.dirname, '../../../dist/cli/main.js');
const run = promisify(execFile);
type Failed = { code: number; stderr: string };

describe('copy to and from s3:// (CLI processes, AWS environment)', () => {
  const t = tempDir();
  let s3: TestS3Server;
  let env: NodeJS.ProcessEnv;
  const vol = join(t.dir, 'vm');
  const url = 's3://stratadisk-test/backups/vm';
  const cli = (...args: string[]) => run(process.execPath, [CLI, ...args], { env });

  beforeAll(async () => {
    s3 = await startS3Server();
    env = { ...process.env, ...s3.env };
    await run(process.execPath, [CLI, 'create', vol, '--size', '16M']);
    const f = join(t.dir, 'in.raw');
    writeFileSync(f, pattern(3 * MiB, 11));
    await run(process.execPath, [CLI, 'import', vol, f]);
    await run(process.execPath, [CLI, 'snapshot', vol, 'base']);
  }, 120_000);

  afterAll(async () => {
    await s3?.stop();
    t.cleanup();
  });

  it('round-trips, re-links the layers already there, reads with info/check/compare, refuses writes and wrong secrets', { timeout: 240_000 }, async () => {
    const up = JSON.parse((await cli('copy', vol, url, '--json')).stdout) as { into: string; copied: number; bytesMoved: number; destination: string };
    expect(up).toMatchObject({ into: 'new', copied: 2, bytesMoved: 3 * MiB, destination: url });

    const back = join(t.dir, 'back');
    expect((await cli('copy', url, back)).stdout).toMatch(/a new volume/);
    expect((await cli('compare', vol, back)).stdout).toMatch(/^Identical/);
    expect((await cli('compare', `${vol}@base`, `${url}@base`)).stdout).toMatch(/^Identical/);
    expect((await cli('info', url)).stdout).toContain(url);
    expect((await cli('check', url)).stdout).toMatch(/^OK/);

    // the chain grows by a snapshot over 1 MiB of new data: only that moves
    const f = join(t.dir, 'more.raw');
    writeFileSync(f, pattern(MiB, 12));
    await run(process.execPath, [CLI, 'write', vol, f, '--offset', '8M']);
    await run(process.execPath, [CLI, 'snapshot', vol, 'more']);
    const again = JSON.parse((await cli('copy', vol, url, '--json')).stdout) as { into: string; reused: number; bytesMoved: number };
    expect(again).toMatchObject({ into: 'existing', reused: 1, copied: 2, bytesMoved: MiB }); // base re-linked; 'more' and the new live layer copied
    expect((await cli('compare', vol, url)).stdout).toMatch(/^Identical/);

    const refused = await cli('snapshot', url, 'x').then(() => null, (e: Failed) => e);
    expect(refused?.code).toBe(2);
    expect(refused?.stderr).toMatch(/unsupported: .*copy it to a directory first/);

    const wrong = 'wrong-secret-0123456789abcdef';
    const denied = await run(process.execPath, [CLI, 'copy', vol, 's3://stratadisk-test/other/vm'], { env: { ...env, AWS_SECRET_ACCESS_KEY: wrong } }).then(
      () => null,
      (e: Failed) => e,
    );
    expect(denied?.code).toBe(2);
    expect(denied?.stderr).toMatch(/permission-denied/);
    expect(denied?.stderr).not.toContain(wrong);
    expect(denied?.stderr).not.toContain(s3.secretAccessKey);

    const inUrl = await cli('copy', vol, 's3://AKIAEXAMPLE:url-secret-0123456789@stratadisk-test/x').then(() => null, (e: Failed) => e);
    expect(inUrl?.stderr).toMatch(/invalid-argument: Credentials .* do not go in an s3:\/\/ URL/);
    expect(inUrl?.stderr).not.toContain('url-secret-0123456789');
  });
});
