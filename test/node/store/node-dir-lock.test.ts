import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { breakStale, lockDirectory } from '../../../src/store/node-dir-lock.js';
import { Volume } from '../../../src/volume/volume.js';

let dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  dirs = [];
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sd-lock-'));
  dirs.push(d);
  return d;
}

describe('NodeDirNamespace writer lock', () => {
  it('refuses a second writer with `locked` naming the holder, and frees on close', async () => {
    const dir = await tempDir();
    const vol = await Volume.create(new NodeDirNamespace(dir), { size: 1 << 20 });
    const err = await Volume.open(new NodeDirNamespace(dir)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'locked' });
    expect(String((err as Error).message)).toContain(String(process.pid));
    const ro = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }));
    await ro.close();
    await vol.close();
    const again = await Volume.open(new NodeDirNamespace(dir));
    await again.close();
  });

  it('takes over a lock left by a process that no longer exists', async () => {
    const dir = await tempDir();
    const vol = await Volume.create(new NodeDirNamespace(dir), { size: 1 << 20 });
    await vol.close();
    // pid 2^22+1 is above Linux's default pid_max range in containers; it is not running.
    await writeFile(join(dir, '.stratadisk.lock'), JSON.stringify({ pid: 4194305, host: hostname(), since: 'then' }));
    const again = await Volume.open(new NodeDirNamespace(dir));
    const owner = JSON.parse(await readFile(join(dir, '.stratadisk.lock'), 'utf8'));
    expect(owner.pid).toBe(process.pid);
    await again.close();
  });

  it('a lock held by a live process on another host is respected', async () => {
    const dir = await tempDir();
    const vol = await Volume.create(new NodeDirNamespace(dir), { size: 1 << 20 });
    await vol.close();
    await writeFile(join(dir, '.stratadisk.lock'), JSON.stringify({ pid: 1, host: 'elsewhere', since: 'then' }));
    await expect(Volume.open(new NodeDirNamespace(dir))).rejects.toMatchObject({ code: 'locked' });
  });
});

describe('the lock always has an owner (issue 12)', () => {
  const LOCK = '.stratadisk.lock';

  it('an empty lock file (what a full disk used to leave) is not an owner: the next writer takes it at once', async () => {
    const dir = await tempDir();
    await (await Volume.create(new NodeDirNamespace(dir), { size: 1 << 20 })).close();
    await writeFile(join(dir, LOCK), '');
    const v = await Volume.open(new NodeDirNamespace(dir));
    const owner = JSON.parse(await readFile(join(dir, LOCK), 'utf8'));
    expect(owner).toMatchObject({ pid: process.pid, host: hostname() });
    expect(typeof owner.token).toBe('string');
    await v.close();
    expect(await readdir(dir)).not.toContain(LOCK);
  });

  it('a process that judged a lock stale cannot remove the lock another one has taken since', async () => {
    const dir = await tempDir();
    const stale = JSON.stringify({ pid: 4194305, host: hostname(), since: 'then' });
    await writeFile(join(dir, LOCK), stale);
    // A takes over the dead owner's lock; B, which read the same dead owner before, now acts.
    const a = await lockDirectory(dir);
    const held = await readFile(join(dir, LOCK), 'utf8');
    await breakStale(dir, join(dir, LOCK), stale, 'b-token');
    expect(await readFile(join(dir, LOCK), 'utf8')).toBe(held);
    await expect(lockDirectory(dir)).rejects.toMatchObject({ code: 'locked' });
    await a.release();
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a takeover in progress by a process that died is reported with the file to delete, never guessed away', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, LOCK), '');
    await writeFile(join(dir, `${LOCK}.break`), JSON.stringify({ pid: 4194305, host: hostname(), since: 'then' }));
    const err = await lockDirectory(dir).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'locked' });
    expect(String((err as Error).message)).toMatch(/process 4194305 died while taking it over .* delete .*\.stratadisk\.lock\.break and retry/);
  });

  const lockModule = fileURLToPath(new URL('../../../dist/store/node-dir-lock.js', import.meta.url));
  it.skipIf(!existsSync(lockModule))('processes racing to take over one stale lock: exactly one gets it (needs dist/: npm run build:ts)', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, LOCK), JSON.stringify({ pid: 4194305, host: hostname(), since: 'then' }));
    // Each child tries once; a winner holds the lock until its standard input closes.
    const script = `
      const { lockDirectory } = await import(${JSON.stringify(lockModule)});
      try { await lockDirectory(${JSON.stringify(dir)}); console.log('got'); }
      catch (e) { console.log(e.code); process.exit(0); }
      process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
    const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const answers = await Promise.all(
      children.map(
        (c) =>
          new Promise<string>((resolve) => {
            let out = '';
            c.stdout!.on('data', (d: Buffer) => {
              out += d.toString();
              if (out.includes('\n')) resolve(out.trim());
            });
            c.on('close', () => resolve(out.trim()));
          }),
      ),
    );
    for (const c of children) c.stdin!.end();
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on('close', r)))));
    expect(answers.filter((a) => a === 'got')).toHaveLength(1);
    expect(answers.filter((a) => a !== 'got').every((a) => a === 'locked')).toBe(true);
  });
});
