/**
 * Restarts after a crash, with the real CLI in separate processes (needs dist/: npm run build):
 * `serve-nbd --socket S` (and its control socket DIR/.stratadisk.sock) and `serve-group S`
 * killed with SIGKILL leave their socket files behind; starting again on the same paths works.
 * A server that is alive on the path makes the second one refuse ('locked'); a regular file at
 * the path is refused ('exists') and left as it was.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from './harness.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const built = existsSync(BIN);
const posix = process.platform !== 'win32';
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

type Child = ChildProcessByStdio<null, Readable, Readable>;

function run(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

/** Start a server; resolves once it printed its first line, with its output so far. */
async function start(...args: string[]): Promise<{ child: Child; out: () => { stdout: string; stderr: string } }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', () => stdout.includes('\n') && resolve());
    child.once('exit', (code) => reject(new Error(`stratadisk ${args[0]} exited ${code}: ${stderr}`)));
  });
  return { child, out: () => ({ stdout, stderr }) };
}

/** Run a server that must refuse to start: its exit code and stderr (status 'served' if it started serving instead). */
async function refused(...args: string[]): Promise<{ status: number | null | 'served'; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const status = await new Promise<number | null | 'served'>((resolve) => {
    child.stdout.once('data', () => resolve('served'));
    child.once('exit', (code) => resolve(code));
  });
  if (status === 'served') child.kill('SIGKILL');
  else await new Promise((r) => (child.stderr.readableEnded ? r(undefined) : child.stderr.once('end', r)));
  return { status, stderr };
}

function isSocketPath(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

/** serve-nbd opens its control socket just after printing its URI: wait until the file is there. */
async function controlSocketUp(dir: string, child: Child): Promise<void> {
  while (!existsSync(join(dir, '.stratadisk.sock'))) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('serve-nbd exited');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function kill9(child: Child): Promise<void> {
  const exited = new Promise((r) => child.once('exit', (_c, sig) => r(sig)));
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
}

async function terminate(child: Child): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  child.kill('SIGTERM');
  return exited;
}

/** The first 8 bytes an NBD server sends. */
function nbdGreeting(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path);
    let got = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 8) {
        c.destroy();
        resolve(got.subarray(0, 8).toString('latin1'));
      }
    });
    c.once('error', reject);
  });
}

describe.skipIf(!built || !posix)('servers restart on their sockets after kill -9', () => {
  it('serve-nbd --socket: restart works (NBD and control socket); a live server makes the second refuse; a regular file is refused and kept', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const [vol, other, sock] = [join(t.dir, 'vol'), join(t.dir, 'other'), join(t.dir, 'nbd.sock')];
    expect(run('create', vol, '--size', '4M').status).toBe(0);
    expect(run('create', other, '--size', '4M').status).toBe(0);
    const first = await start('serve-nbd', vol, '--socket', sock);
    expect(first.out().stdout).toBe(`nbd+unix:///?socket=${sock}\n`);
    await controlSocketUp(vol, first.child);
    await kill9(first.child);
    expect(lstatSync(sock).isSocket()).toBe(true); // left behind
    expect(lstatSync(join(vol, '.stratadisk.sock')).isSocket()).toBe(true);

    const second = await start('serve-nbd', vol, '--socket', sock);
    expect(second.out().stdout).toBe(`nbd+unix:///?socket=${sock}\n`);
    expect(await nbdGreeting(sock)).toBe('NBDMAGIC');
    const jobs = run('jobs', vol); // through the control socket, claimed again too
    expect(jobs.stderr).toBe('');
    expect(jobs.stdout).toMatch(/No jobs/);
    expect(second.out().stderr).toBe('');

    // Something listens on the socket: another server (of another volume) refuses, the first serves on.
    const busy = await refused('serve-nbd', other, '--socket', sock);
    expect(busy.status).toBe(2);
    expect(busy.stderr).toBe(`stratadisk: locked: Another process is listening on the NBD socket ${sock}; stop it first, or choose another path.\n`);
    expect(await nbdGreeting(sock)).toBe('NBDMAGIC');
    expect(await terminate(second.child)).toBe(0);
    expect(existsSync(sock)).toBe(false);

    // A regular file where the socket would go: refused, never deleted.
    writeFileSync(sock, 'not a socket');
    const file = await refused('serve-nbd', vol, '--socket', sock);
    expect(file.status).toBe(2);
    expect(file.stderr).toMatch(/^stratadisk: exists: .*nbd\.sock exists and is a regular file, not a socket; it was left alone/);
    expect(readFileSync(sock, 'utf8')).toBe('not a socket');
  }, 120_000);

  it('serve-nbd: a regular file at DIR/.stratadisk.sock is left alone (no control socket, serving goes on)', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const [vol, sock] = [join(t.dir, 'vol'), join(t.dir, 'nbd.sock')];
    expect(run('create', vol, '--size', '4M').status).toBe(0);
    writeFileSync(join(vol, '.stratadisk.sock'), 'mine');
    const s = await start('serve-nbd', vol, '--socket', sock);
    expect(await nbdGreeting(sock)).toBe('NBDMAGIC');
    // It either says it has no control socket, or (wrong) made one in place of the file.
    const controlPath = join(vol, '.stratadisk.sock');
    while (!s.out().stderr.includes('\n') && !isSocketPath(controlPath)) await new Promise((r) => setTimeout(r, 20));
    expect(s.out().stderr).toContain('no control socket (');
    expect(await terminate(s.child)).toBe(0);
    expect(s.out().stderr).toContain('.stratadisk.sock exists and is a regular file, not a socket; it was left alone');
    expect(readFileSync(join(vol, '.stratadisk.sock'), 'utf8')).toBe('mine');
  }, 120_000);

  it('serve-group SOCKET: restart works; a live host makes the second refuse; a regular file is refused and kept', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const [a, b, sock] = [join(t.dir, 'a'), join(t.dir, 'b'), join(t.dir, 'g.sock')];
    expect(run('create', a, '--size', '1M', '--block-size', '4K').status).toBe(0);
    expect(run('create', b, '--size', '1M', '--block-size', '4K').status).toBe(0);
    const first = await start('serve-group', sock, a);
    expect(first.out().stdout).toBe(`Serving a on ${sock}\n`);
    await kill9(first.child);
    expect(lstatSync(sock).isSocket()).toBe(true);

    const second = await start('serve-group', sock, a);
    expect(second.out().stdout).toBe(`Serving a on ${sock}\n`);
    const snap = run('group-snapshot', sock, 'after-restart');
    expect(snap.stderr).toBe('');
    expect(snap.status).toBe(0);

    const busy = await refused('serve-group', sock, b);
    expect(busy.status).toBe(2);
    expect(busy.stderr).toBe(`stratadisk: locked: Another process is listening on the group socket ${sock}; stop it first, or choose another path.\n`);
    expect(run('group-snapshot', sock, 'still-served').status).toBe(0);
    expect(await terminate(second.child)).toBe(0);

    writeFileSync(sock, 'not a socket');
    const file = await refused('serve-group', sock, b);
    expect(file.status).toBe(2);
    expect(file.stderr).toMatch(/^stratadisk: exists: .*g\.sock exists and is a regular file, not a socket; it was left alone/);
    expect(readFileSync(sock, 'utf8')).toBe('not a socket');
  }, 120_000);
});
