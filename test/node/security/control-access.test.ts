/**
 * The control socket and a consistency group's socket are their owner's alone (issue 13, items
 * 2 and 8), attempted by a second, unprivileged local user (test/node/helpers/other-user.ts)
 * who is a member of the volume directory's group, against servers started by root with
 * umask 002 in a group-writable directory — the setup where the old sockets (mode 0775) let
 * every group member in. Needs dist/ (npm run build).
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestControl } from '../../../src/jobs/control.js';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const built = existsSync(BIN);
type Child = ChildProcessByStdio<null, Readable, Readable>;

function run(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
}

/** Start `stratadisk ARGS` as root under umask 002; resolves once it printed its first line. */
async function startUmask002(children: Child[], ...args: string[]): Promise<{ child: Child; out: () => { stdout: string; stderr: string } }> {
  const child = spawn('sh', ['-c', 'umask 002; exec "$0" "$@"', process.execPath, BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
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

/** Wait until `path` exists (the server makes it after its first line), or the server exits. */
async function appears(path: string, child: Child): Promise<void> {
  while (!existsSync(path)) {
    if (child.exitCode !== null) throw new Error(`the server exited before ${path} appeared`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A directory of root's group-shared with the other user: setgid, rwxrwsr-x, group = the other user's gid. */
function groupDir(path: string): void {
  mkdirSync(path, { recursive: true });
  chownSync(path, 0, otherUser!.gid);
  chmodSync(path, 0o2775);
}

describe.skipIf(!otherUser || !built)(`the control socket is the owner's alone ${otherUserSkip ?? (built ? '' : '(needs dist/: npm run build)')}`, () => {
  const children: Child[] = [];
  let base = '';
  let vol = '';
  let server: Awaited<ReturnType<typeof startUmask002>>;

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sd-control-'));
    chmodSync(base, 0o755); // the other user may reach what is below; our modes must stop it
    vol = join(base, 'vol');
    groupDir(vol);
    const c = run('create', vol, '--size', '1M', '--block-size', '4K');
    expect(c.status, c.stderr).toBe(0);
    for (const f of readdirSync(vol)) chownSync(join(vol, f), 0, otherUser!.gid);
    server = await startUmask002(children, 'serve-nbd', vol, '--socket', join(base, 'nbd.sock'));
    await appears(join(vol, '.stratadisk.sock'), server.child);
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
    rmSync(base, { recursive: true, force: true });
  });

  it('is mode 0600 under umask 002; a group member can neither connect nor list, pause or cancel jobs', async () => {
    const sock = join(vol, '.stratadisk.sock');
    expect(lstatSync(sock).isSocket()).toBe(true);
    expect(lstatSync(sock).mode & 0o777).toBe(0o600);
    const jobs = await otherUser!.run(process.execPath, [BIN, 'jobs', vol]);
    expect(jobs.code, jobs.stdout).toBe(2);
    expect(jobs.stderr).toContain('stratadisk: permission-denied: The control socket of');
    expect(jobs.stderr).toContain('belongs to another user');
    const cancel = await otherUser!.run(process.execPath, [BIN, 'jobs', vol, '--cancel', 'j1']);
    expect(cancel.code).toBe(2);
    expect(cancel.stderr).toContain('permission-denied');
    // A client of its own that skips everything: the kernel refuses the connection.
    const raw = await otherUser!.run(process.execPath, [
      '-e',
      `const c = require('net').createConnection(${JSON.stringify(sock)}, () => c.write('{"op":"jobs"}\\n'));
       c.on('data', (d) => process.stdout.write(d)); c.on('error', (e) => process.stdout.write('ERR ' + e.code));`,
    ]);
    expect(raw.stdout).toBe('ERR EACCES');
    // The owner still gets in.
    const mine = run('jobs', vol);
    expect(mine.status, mine.stderr).toBe(0);
    expect(mine.stdout).toContain('No jobs');
  });

  it('a mirror into a target holding a planted symlink is refused, and the file it points to is unchanged', async () => {
    const victim = join(base, 'victim.txt');
    writeFileSync(victim, 'precious', { mode: 0o600 });
    const target = join(base, 'planted');
    mkdirSync(target, { mode: 0o700 });
    // what an attacker plants: every layer file name the copy could use
    for (let i = 0; i < 4; i++) for (const ext of ['data', 'map']) symlinkSync(victim, join(target, `L${String(i).padStart(6, '0')}.${ext}`));
    // The request as it reaches the server (the CLI itself wants an empty directory; the server must not trust that).
    await expect(requestControl(vol, { op: 'mirror', target })).rejects.toMatchObject({
      code: 'invalid-argument',
      message: `The target ${target} holds "L000000.data", a symbolic link; a target holds only regular files. Remove it, or mirror into a new path.`,
    });
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(lstatSync(join(target, 'L000001.data')).isSymbolicLink()).toBe(true);
  });

  it("a mirror into another user's directory, or one other users can change, is refused", async () => {
    const theirs = join(base, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, otherUser!.uid, otherUser!.gid);
    const m = run('mirror', vol, theirs);
    expect(m.status).toBe(2);
    expect(m.stderr).toContain(`stratadisk: permission-denied: The target ${theirs} belongs to another user`);
    expect(readdirSync(theirs)).toEqual([]);
    const shared = join(base, 'shared');
    groupDir(shared);
    const s = run('mirror', vol, join(shared, 'copy'));
    expect(s.status).toBe(2);
    expect(s.stderr).toContain(`stratadisk: permission-denied: ${shared}, above the target ${join(shared, 'copy')}, can be changed by other users (mode 2775)`);
    expect(readdirSync(shared)).toEqual([]);
    // the server is still serving the original and takes the owner's jobs
    const mine = run('jobs', vol);
    expect(mine.status, mine.stderr).toBe(0);
  });
});

describe.skipIf(!otherUser || !built)(`serve-group's socket ${otherUserSkip ?? (built ? '' : '(needs dist/: npm run build)')}`, () => {
  const children: Child[] = [];
  let base = '';
  beforeAll(() => {
    base = mkdtempSync(join(tmpdir(), 'sd-group-'));
    chmodSync(base, 0o755);
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
    rmSync(base, { recursive: true, force: true });
  });

  it('a group member cannot join the host or take a snapshot (socket 0600 under umask 002)', async () => {
    const shared = join(base, 'shared');
    groupDir(shared);
    const vol = join(base, 'ledger');
    expect(run('create', vol, '--size', '1M', '--block-size', '4K').status).toBe(0);
    const sock = join(shared, 'g.sock');
    const host = await startUmask002(children, 'serve-group', sock, vol);
    expect(lstatSync(sock).mode & 0o777).toBe(0o600);
    const snap = await otherUser!.run(process.execPath, [BIN, 'group-snapshot', sock, 'theirs']);
    expect(snap.code, snap.stdout).toBe(2);
    expect(snap.stderr).toContain('permission-denied');
    expect(run('snapshots', vol).stdout).not.toContain('theirs');
    const mine = run('group-snapshot', sock, 'mine');
    expect(mine.status, mine.stderr).toBe(0);
    expect(run('snapshots', vol).stdout).toContain('mine');
    host.child.kill('SIGTERM');
  });

  it('a regular file at SOCKET is left alone (serve-group refuses to start)', async () => {
    const vol = join(base, 'other-ledger');
    expect(run('create', vol, '--size', '1M', '--block-size', '4K').status).toBe(0);
    const file = join(base, 'precious.sock');
    writeFileSync(file, 'precious');
    const r = spawnSync(process.execPath, [BIN, 'serve-group', file, vol], { encoding: 'utf8', timeout: 60_000 });
    expect(readFileSync(file, 'utf8')).toBe('precious');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`stratadisk: exists: ${file} exists and is a regular file, not a socket; it was left alone.`);
  });
});
