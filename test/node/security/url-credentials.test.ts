/** Credentials inside URLs (a password, presigned query parameters) never reach printed text. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { redactSecrets } from '../../../src/util/redact.js';
import { cli } from '../cli/harness.js';

describe('URL credentials in printed text', () => {
  it('redactSecrets hides a URL password and every credential-like query parameter of every URL in a text', () => {
    const text = 'x http://u:PASS@h/img?a=1&sig=S1&X-Amz-Signature=S2&b=2 and https://h/p?key=K3 ok';
    const out = redactSecrets(text);
    for (const s of ['PASS', 'S1', 'S2', 'K3']) expect(out).not.toContain(s);
    expect(out).toBe('x http://u:[redacted]@h/img?a=1&sig=[redacted]&X-Amz-Signature=[redacted]&b=2 and https://h/p?key=[redacted] ok');
  });

  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('create --backing with a password in the URL is refused at once, naming no password (it used to print it after 6 attempts)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sd-urlcred-'));
    dirs.push(dir);
    const r = await cli(['create', join(dir, 'v'), '--backing', 'http://user:PASSWD123@127.0.0.1:9/img']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: invalid-argument: http:\/\/user:\[redacted\]@127\.0\.0\.1:9\/img carries a user name or password/);
    expect(r.stderr + r.stdout).not.toContain('PASSWD123');
  });

  it('an unreachable presigned URL is named without its signature', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sd-urlcred-'));
    dirs.push(dir);
    const r = await cli(['create', join(dir, 'v'), '--backing', 'http://127.0.0.1:9/img?X-Amz-Credential=AKIDSECRET&X-Amz-Signature=SIGSECRET']);
    expect(r.code).toBe(2);
    expect(r.stderr + r.stdout).not.toMatch(/AKIDSECRET|SIGSECRET/);
  });
});
