/**
 * claimSocketPath / listenOnSocket (src/util/unix-socket.ts): a stale socket (its server was
 * killed) is removed and the path listened on; a socket something listens on, a regular file, a
 * directory, a symbolic link and another user's stale socket are refused and left in place.
 */
import { spawn } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { claimSocketPath, listenOnSocket } from '../../../src/util/unix-socket.js';
import { tempDir } from '../cli/harness.js';

const posix = process.platform !== 'win32';
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function dir(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A socket file nothing listens on: a child process listens there and SIGKILLs itself. */
async function staleSocket(path: string): Promise<void> {
  const script = `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`;
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  const signal = await new Promise((r) => child.once('exit', (_code, sig) => r(sig)));
  expect(signal).toBe('SIGKILL');
  expect(lstatSync(path).isSocket()).toBe(true);
}

function serverOn(): Server {
  const s = createServer((c) => {
    c.on('error', () => {}); // the probe hangs up at once
    c.end('hello');
  });
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

function connects(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let got = '';
    c.on('data', (d) => (got += d.toString()));
    c.once('end', () => resolve(got));
    c.once('error', reject);
  });
}

describe.skipIf(!posix)('Unix socket paths left behind', () => {
  it('a stale socket is removed and the path listened on; a live one is locked and keeps serving', async () => {
    const path = join(dir(), 's.sock');
    await staleSocket(path);
    const first = serverOn();
    await listenOnSocket(first, path, 'test socket');
    expect(await connects(path)).toBe('hello');
    await expect(listenOnSocket(createServer(), path, 'test socket')).rejects.toMatchObject({
      code: 'locked',
      message: `Another process is listening on the test socket ${path}; stop it first, or choose another path.`,
    });
    await expect(claimSocketPath(path)).rejects.toMatchObject({ code: 'locked' });
    expect(await connects(path)).toBe('hello');
  });

  it('a regular file, a directory or a symbolic link at the path: refused, left as they were', async () => {
    const d = dir();
    const file = join(d, 'file.sock');
    writeFileSync(file, 'precious');
    await expect(listenOnSocket(createServer(), file, 'NBD socket')).rejects.toMatchObject({ code: 'exists', message: expect.stringContaining(`${file} exists and is a regular file, not a socket; it was left alone`) });
    expect(readFileSync(file, 'utf8')).toBe('precious');
    const sub = join(d, 'dir.sock');
    mkdirSync(sub);
    await expect(claimSocketPath(sub)).rejects.toMatchObject({ code: 'exists', message: expect.stringContaining('is a directory') });
    expect(lstatSync(sub).isDirectory()).toBe(true);
    const stale = join(d, 'stale.sock');
    await staleSocket(stale);
    const link = join(d, 'link.sock');
    symlinkSync(stale, link);
    await expect(claimSocketPath(link)).rejects.toMatchObject({ code: 'exists', message: expect.stringContaining('is a symbolic link') });
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(lstatSync(stale).isSocket()).toBe(true);
  });

  it.skipIf(process.getuid?.() !== 0)("another user's stale socket is left alone (runs as root only)", async () => {
    const path = join(dir(), 's.sock');
    await staleSocket(path);
    chownSync(path, 65534, 65534);
    await expect(claimSocketPath(path, 'group socket')).rejects.toMatchObject({ code: 'exists', message: expect.stringContaining('stale socket of another user (uid 65534)') });
    expect(lstatSync(path).isSocket()).toBe(true);
  });

  it('nothing at the path: nothing to do', async () => {
    await expect(claimSocketPath(join(dir(), 'none.sock'))).resolves.toBeUndefined();
  });

  it('the socket is 0600 from birth whatever the umask, bound in a 0700 directory; closing removes both', async () => {
    const d = dir();
    const path = join(d, 'wide.sock');
    const old = process.umask(0); // the widest: without the private directory the socket would be 0777
    let s: Server;
    try {
      s = serverOn();
      const l = await listenOnSocket(s, path, 'test socket');
      expect(lstatSync(path).mode & 0o777).toBe(0o600);
      expect(lstatSync(l.privateDir!).mode & 0o777).toBe(0o700);
      expect(l.privateDir!.startsWith(`${path}.`)).toBe(true);
    } finally {
      process.umask(old);
    }
    expect(await connects(path)).toBe('hello');
    await new Promise<void>((r) => s.close(() => r()));
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(d)).toEqual([]);
  });

  it('a path too long for a socket address is refused, not cut short', async () => {
    const path = join(dir(), 'x'.repeat(100));
    await expect(listenOnSocket(createServer(), path, 'test socket')).rejects.toMatchObject({ code: 'invalid-argument', message: expect.stringContaining('is too long for a Unix socket') });
  });
});
