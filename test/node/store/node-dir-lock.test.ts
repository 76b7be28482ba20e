import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
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
