/**
 * Issue 13, item 5 (store side): store-server tokens never need the command line. serve-store
 * takes its token from a 0600 file, standard input or $STRATADISK_TOKEN, or generates one into a
 * private file; a token given as an argument warns; a token file others can read is refused
 * (as ssh refuses a readable key); tokens never appear in messages. As a second local user: the
 * process list of a running serve-store shows no token.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { readSecretFile, redactSecrets, redactUrl } from '../../../src/util/secret.js';
import { cli, startCli } from '../cli/harness.js';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';

const TOKEN = 'Zm9vYmFyLXN0b3JlLXNlY3JldHMtdGVzdC10b2tlbi0x';
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sd-secrets-'));
  dirs.push(d);
  return d;
}
const lines = (s: string) => s.trim().split('\n');

describe('serve-store: the token never on the command line', () => {
  it('without a token, one is generated into a 0600 file in a 0700 directory (not printed), removed at stop', async () => {
    const d = await tmp();
    const server = startCli(['serve-store', d]);
    let file: string;
    try {
      const [url, where] = lines(await server.firstLine());
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/); // no #token= on stdout
      file = /^token file: (.+)$/.exec(where ?? '')![1]!;
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(join(file, '..')).mode & 0o777).toBe(0o700);
      const token = (await readFile(file, 'utf8')).trim();
      expect(token.length).toBeGreaterThanOrEqual(43);
      expect(server.out().stdout + server.out().stderr).not.toContain(token);
      expect(await new RemoteNamespace(url!, { token }).list()).toEqual([]);
    } finally {
      server.stop();
      await server.done;
    }
    expect(existsSync(file)).toBe(false);
  });

  it('takes the token from $STRATADISK_TOKEN, a 0600 file, or standard input', async () => {
    const d = await tmp();
    process.env.STRATADISK_TOKEN = TOKEN;
    const s1 = startCli(['serve-store', d]);
    try {
      const [url, where] = lines(await s1.firstLine());
      delete process.env.STRATADISK_TOKEN;
      expect(where).toMatch(/STRATADISK_TOKEN/);
      expect(await new RemoteNamespace(url!, { token: TOKEN }).list()).toEqual([]);
    } finally {
      delete process.env.STRATADISK_TOKEN;
      s1.stop();
      await s1.done;
    }

    const file = join(await tmp(), 'tok');
    writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
    const s2 = startCli(['serve-store', d, '--token-file', file]);
    try {
      const [u2] = lines(await s2.firstLine());
      expect(await new RemoteNamespace(u2!, { token: TOKEN }).list()).toEqual([]);
      expect(s2.out().stderr).not.toContain('warning');
    } finally {
      s2.stop();
      await s2.done;
    }

    // standard input (`--token-file -`)
    const ac = new AbortController();
    let out = '';
    const running = main(['serve-store', d, '--token-file', '-'], { stdout: { write: (t: string) => (out += t) }, stderr: { write: () => true }, stdin: Readable.from([Buffer.from(`${TOKEN}\n`)]), signal: ac.signal });
    while (!out.includes('\n')) await new Promise((r) => setTimeout(r, 20));
    try {
      expect(await new RemoteNamespace(lines(out)[0]!, { token: TOKEN }).list()).toEqual([]);
    } finally {
      ac.abort();
      expect(await running).toBe(0);
    }
  });

  it('a token given as --token works but warns that every local user can read it', async () => {
    const d = await tmp();
    const s = startCli(['serve-store', d, '--token', TOKEN]);
    try {
      const [url] = lines(await s.firstLine());
      expect(s.out().stderr).toMatch(/warning: .*command line.*\(ps\)/);
      expect(s.out().stderr + s.out().stdout).not.toContain(TOKEN);
      expect(await new RemoteNamespace(url!, { token: TOKEN }).list()).toEqual([]);
    } finally {
      s.stop();
      await s.done;
    }
  });

  it('refuses a token file that others can read, or that is a symlink', async () => {
    const d = await tmp();
    const file = join(d, 'tok');
    writeFileSync(file, TOKEN, { mode: 0o644 });
    await chmod(file, 0o644);
    const r = await cli(['serve-store', d, '--token-file', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/readable or writable by others \(mode 0644\)/);
    expect(r.stderr).not.toContain(TOKEN);
    await expect(readSecretFile(file)).rejects.toMatchObject({ code: 'invalid-argument' });
    const { symlinkSync } = await import('node:fs');
    await chmod(file, 0o600);
    symlinkSync(file, join(d, 'link'));
    await expect(readSecretFile(join(d, 'link'))).rejects.toMatchObject({ code: 'invalid-argument' });
  });

  it('mirror: a token in the URL warns, and is redacted from every message', async () => {
    const d = await tmp();
    const r = await cli(['mirror', join(d, 'nothing'), `http://127.0.0.1:9/a/b#token=${TOKEN}`]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toContain(TOKEN);
    // the library's own messages too
    expect(() => new RemoteNamespace(`http://127.0.0.1:9/a/b#token=${TOKEN}`)).toThrow(/path is at most one plain name/);
    try {
      new RemoteNamespace(`http://127.0.0.1:9/a/b#token=${TOKEN}`);
    } catch (e) {
      expect((e as Error).message).not.toContain(TOKEN);
    }
    expect(redactUrl(`http://h:1/v#token=${TOKEN}`)).toBe('http://h:1/v#token=[redacted]');
    expect(redactSecrets(`see http://h:1/v#token=${TOKEN} and ${TOKEN}`)).not.toContain(TOKEN);
  });
});

const cliJs = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

describe.skipIf(!otherUser || !existsSync(cliJs))(`another local user reads the process list ${otherUserSkip ?? ''}`, () => {
  it('sees no token in the arguments of a running serve-store whose token came from the environment', async () => {
    const d = await tmp();
    await mkdir(join(d, 'served'));
    const child = spawn(process.execPath, [cliJs, 'serve-store', join(d, 'served')], { env: { ...process.env, STRATADISK_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]!);
        });
        child.once('exit', (c) => reject(new Error(`serve-store exited ${c}`)));
      });
      const ps = await otherUser!.run('ps', ['-eo', 'args']);
      expect(ps.stdout).toContain('serve-store');
      expect(ps.stdout).not.toContain(TOKEN);
      const cmdline = await otherUser!.run('cat', [`/proc/${child.pid}/cmdline`]);
      expect(cmdline.stdout).not.toContain(TOKEN);
      // and the server does use that token
      expect(await new RemoteNamespace(url, { token: TOKEN }).list()).toEqual([]);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
