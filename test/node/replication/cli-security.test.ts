/**
 * The replication commands' security rules, with the real CLI: a wrong token is refused on both
 * sides and never printed; plain TCP beyond loopback is refused (client and server); a token on
 * the command line is refused with the argv warning, and not echoed.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/harness.js';
import { makeTestTls } from '../helpers/tls-certs.js';
import { built, env, killAll, run, runOk, start, TOKEN, until } from './cli-helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  killAll();
  for (const c of cleanups.splice(0)) c();
});

describe.skipIf(!built)('replication CLI: tokens and transport security', () => {
  it('a wrong token is refused on both sides, nothing is copied, and neither token is printed', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    const s = join(dir, 's');
    await runOk(['create', p, '--size', '4M']);
    const sec = start(['serve-replica', s, '--port', '0', '--create', '--size', '4M']);
    const url = (await sec.waitFor(/tcp:\/\/127\.0\.0\.1:\d+/)).trim();
    const wrong = randomBytes(32).toString('hex');
    const r = await run(['replicate', p, url], env(wrong));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: permission-denied: /m);
    await sec.waitFor(/refused a connection from 127\.0\.0\.1:\d+/);
    for (const text of [r.stdout, r.stderr, sec.stdout(), sec.stderr()]) {
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(TOKEN);
    }
    // nothing reached the secondary: it never paired
    const st = JSON.parse(await runOk(['replication', 'status', s, '--json'])) as { secondary: { connected: boolean; role: { role: string } } };
    expect(st.secondary.connected).toBe(false);
    expect(st.secondary.role.role).toBe('none');
  });

  it('plain TCP beyond loopback is refused, by replicate and by serve-replica', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    await runOk(['create', p, '--size', '4M']);
    for (const u of ['tcp://192.0.2.10:7788', 'ws://192.0.2.10:7788/replica']) {
      const r = await run(['replicate', p, u]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/invalid-argument: Replicating to 192\.0\.2\.10 without TLS would let anyone on the network read and change the replicated data: use (tls|wss):\/\/192\.0\.2\.10:PORT/);
    }
    const s = await run(['serve-replica', join(dir, 's'), '--port', '0', '--host', '0.0.0.0', '--create', '--size', '4M']);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/without TLS/);
  });

  it('--token on the command line is refused with the argv warning, and not echoed', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const p = join(dir, 'p');
    await runOk(['create', p, '--size', '4M']);
    const secret = randomBytes(32).toString('hex');
    const noEnv = { ...process.env };
    delete noEnv.STRATADISK_REPLICA_TOKEN;
    for (const args of [
      ['replicate', p, 'tcp://127.0.0.1:9', '--token', secret],
      ['serve-replica', join(dir, 's'), '--port', '0', '--token', secret],
    ]) {
      const r = await run(args, noEnv);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--token is refused: a token on the command line can be read by every local user \(ps\)/);
      expect(r.stderr + r.stdout).not.toContain(secret);
    }
    // and no token at all says where to put one
    const none = await run(['replicate', p, 'tcp://127.0.0.1:9'], noEnv);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/STRATADISK_REPLICA_TOKEN/);
  });

  it('TLS: the server\'s certificate is verified (--ca), and a token file must be 0600', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const tls = makeTestTls();
    cleanups.push(() => rmSync(tls.dir, { recursive: true, force: true }));
    const p = join(dir, 'p');
    await runOk(['create', p, '--size', '4M']);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, TOKEN + '\n', { mode: 0o600 });
    const noEnv = { ...process.env };
    delete noEnv.STRATADISK_REPLICA_TOKEN;
    const sec = start(['serve-replica', join(dir, 's'), '--port', '0', '--tls-cert', tls.serverCert, '--tls-key', tls.serverKey, '--token-file', tokenFile, '--create', '--size', '4M'], noEnv);
    const url = (await sec.waitFor(/tls:\/\/127\.0\.0\.1:\d+/)).trim();
    const untrusted = await run(['replicate', p, url, '--token-file', tokenFile], noEnv);
    expect(untrusted.code).toBe(2);
    expect(untrusted.stderr).toMatch(/untrusted: The replica server at tls:.* presented a certificate we do not trust/);
    chmodSync(tokenFile, 0o644);
    const loose = await run(['replicate', p, url, '--token-file', tokenFile, '--ca', tls.caCert], noEnv);
    expect(loose.code).toBe(2);
    expect(loose.stderr).toMatch(/is readable or writable by others \(mode 0644\); the replication token is refused/);
    expect(loose.stderr).not.toContain(TOKEN);
    chmodSync(tokenFile, 0o600);
    const pri = start(['replicate', p, url, '--token-file', tokenFile, '--ca', tls.caCert], noEnv);
    await pri.waitFor(/nbd\+unix:/);
    await until(p, (x) => x.sessions[0]?.state === 'replicating', 'replicating over TLS');
    pri.kill('SIGINT');
    expect(await pri.exited).toBe(0);
    sec.kill('SIGINT');
    expect(await sec.exited).toBe(0);
  });
});
