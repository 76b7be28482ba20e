/** The security tests' attacker really is another, unprivileged user (test/node/helpers/other-user.ts). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';

describe.skipIf(!otherUser)(`a second local user ${otherUserSkip ?? ''}`, () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('runs with its own uid and cannot read a file only root may read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sd-other-'));
    dirs.push(dir);
    const secret = join(dir, 'secret');
    await writeFile(secret, 'guest data', { mode: 0o600 });
    const id = await otherUser!.run('id', ['-u']);
    expect(id.stdout.trim()).toBe(String(otherUser!.uid));
    const cat = await otherUser!.run('cat', [secret]);
    expect(cat.code).not.toBe(0);
    expect(cat.stderr).toMatch(/Permission denied/);
    const node = await otherUser!.run('node', ['-e', 'process.stdout.write(String(process.getuid()))']);
    expect(node.stdout).toBe(String(otherUser!.uid));
  });
});

describe('test TLS material', () => {
  it('makes a CA, server and client certificates that openssl verifies, and a PSK file', async () => {
    const { makeTestTls } = await import('../helpers/tls-certs.js');
    const { execFileSync } = await import('node:child_process');
    const { readFileSync, statSync } = await import('node:fs');
    const t = makeTestTls();
    try {
      const out = execFileSync('openssl', ['verify', '-CAfile', t.caCert, t.serverCert, t.clientCert]).toString();
      expect(out).toMatch(/server-cert.pem: OK/);
      expect(out).toMatch(/client-cert.pem: OK/);
      expect(readFileSync(t.pskFile, 'utf8')).toBe(`${t.pskUser}:${t.pskKey}\n`);
      expect(statSync(t.dir).mode & 0o777).toBe(0o700);
      expect(statSync(t.serverKey).mode & 0o777).toBe(0o600);
    } finally {
      await rm(t.dir, { recursive: true, force: true });
    }
  });
});
