import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { errorCode, namespaceConformance, storeConformance } from './conformance.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stratadisk-dir-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
namespaceConformance('NodeDirNamespace', async () => {
  const dir = join(root, `ns-${counter++}`);
  const namespace = new NodeDirNamespace(dir, { create: true });
  return {
    namespace,
    reopen: async () => new NodeDirNamespace(dir),
    readOnly: async () => new NodeDirNamespace(dir, { readOnly: true }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

for (const io of ['sync', 'async'] as const) {
  storeConformance(`NodeDirNamespace store (io: ${io})`, async () => {
    const dir = join(root, `st-${counter++}`);
    const ns = new NodeDirNamespace(dir, { create: true, io });
    return {
      open: () => ns.open('disk', { create: true }),
      reopen: () => ns.open('disk'),
      openReadOnly: () => new NodeDirNamespace(dir, { readOnly: true, io }).open('disk'),
      cleanup: () => rm(dir, { recursive: true, force: true }),
    };
  });
}

describe('NodeDirNamespace specifics', () => {
  it('creates its directory only when asked', async () => {
    const dir = join(root, 'made', 'deep');
    expect(await errorCode(new NodeDirNamespace(dir).list())).toBe('not-found');
    expect(await new NodeDirNamespace(dir, { create: true }).list()).toEqual([]);
    expect((await stat(dir)).isDirectory()).toBe(true);
    // A read-only namespace never creates anything.
    expect(await errorCode(new NodeDirNamespace(join(root, 'ro-missing'), { create: true, readOnly: true }).list())).toBe('not-found');
  });

  it('a file where the directory should be is invalid-argument', async () => {
    const path = join(root, 'plain-file');
    await writeFile(path, 'x');
    expect(await errorCode(new NodeDirNamespace(path).list())).toBe('invalid-argument');
  });

  it('list shows only regular files with valid names', async () => {
    const dir = join(root, 'mixed');
    const ns = new NodeDirNamespace(dir, { create: true });
    await (await ns.open('disk', { create: true })).close();
    await mkdir(join(dir, 'subdir'));
    await writeFile(join(dir, '.tmp-file'), 'x');
    await writeFile(join(dir, 'with space'), 'x');
    await symlink(join(dir, 'disk'), join(dir, 'link'));
    expect(await ns.list()).toEqual(['disk']);
    expect(await ns.exists('subdir')).toBe(false);
    expect(await errorCode(ns.open('subdir'))).toBe('unsupported');
    expect(await errorCode(ns.delete('subdir'))).toBe('io');
  });

  it('sync resolves on a directory with changes', async () => {
    const ns = new NodeDirNamespace(join(root, 'synced'), { create: true });
    await (await ns.open('a', { create: true })).close();
    await ns.sync();
    await ns.delete('a');
    await ns.sync();
    expect(await ns.list()).toEqual([]);
  });
});
