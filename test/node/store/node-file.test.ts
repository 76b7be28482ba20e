import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeError, NodeFileStore, type NodeIoMode } from '../../../src/store/node-file.js';
import { equalBytes, errorCode, pattern, storeConformance } from './conformance.js';

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stratadisk-file-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
for (const io of ['sync', 'async'] as NodeIoMode[]) {
  storeConformance(`NodeFileStore (io: ${io})`, async () => {
    const path = join(root, `store-${io}-${counter++}`);
    return {
      open: () => NodeFileStore.open(path, { create: true, io }),
      reopen: () => NodeFileStore.open(path, { io }),
      openReadOnly: () => NodeFileStore.open(path, { readOnly: true, io }),
      cleanup: () => rm(path, { force: true }),
      largeOffsets: true,
    };
  });
}

describe('NodeFileStore specifics', () => {
  it('defaults to sync I/O for regular files and reports what it opened', async () => {
    const path = join(root, 'defaults');
    const s = await NodeFileStore.open(path, { create: true });
    try {
      expect(s.io).toBe('sync');
      expect(s.isBlockDevice).toBe(false);
      expect(s.resizable).toBe(true);
      expect(s.path).toBe(path);
    } finally {
      await s.close();
    }
  });

  it('opens an existing file with its size and contents', async () => {
    const path = join(root, 'existing');
    const data = pattern(12_345, 1);
    await writeFile(path, data);
    const s = await NodeFileStore.open(path);
    try {
      expect(s.size).toBe(12_345);
      equalBytes(await s.read(0, s.size), data, 'contents');
    } finally {
      await s.close();
    }
  });

  it('a missing file is not-found, with a hint to pass create', async () => {
    const e = await NodeFileStore.open(join(root, 'missing')).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'not-found' });
    expect((e as Error).message).toMatch(/create: true/);
    expect((e as Error).cause).toMatchObject({ code: 'ENOENT' });
    expect(await errorCode(NodeFileStore.open(join(root, 'no-dir', 'x'), { create: true }))).toBe('not-found');
  });

  it('a directory is refused with a clear error', async () => {
    const dir = join(root, 'a-dir');
    await mkdir(dir);
    expect(await errorCode(NodeFileStore.open(dir))).toBe('unsupported');
    expect(await errorCode(NodeFileStore.open(dir, { readOnly: true }))).toBe('unsupported');
  });

  it.skipIf(process.platform === 'win32')('a FIFO is refused at once instead of blocking in open()', async () => {
    const fifo = join(root, 'a-fifo');
    execFileSync('mkfifo', [fifo]);
    expect(await errorCode(NodeFileStore.open(fifo, { readOnly: true }))).toBe('unsupported');
  });

  it('create + readOnly makes an empty read-only store', async () => {
    const path = join(root, 'ro-created');
    const s = await NodeFileStore.open(path, { create: true, readOnly: true });
    try {
      expect(s.size).toBe(0);
      expect(await errorCode(s.write(0, new Uint8Array(1)))).toBe('read-only');
    } finally {
      await s.close();
    }
    expect((await stat(path)).isFile()).toBe(true);
  });

  it.skipIf(process.getuid?.() === 0)('a file without write permission opened writable is read-only (skipped as root: root bypasses modes)', async () => {
    const path = join(root, 'no-write');
    await writeFile(path, new Uint8Array(10));
    await chmod(path, 0o444);
    expect(await errorCode(NodeFileStore.open(path))).toBe('read-only');
  });

  it('a file shortened behind its back gives io, not a hang or garbage', async () => {
    const path = join(root, 'shrunk');
    await writeFile(path, new Uint8Array(8192));
    const s = await NodeFileStore.open(path);
    try {
      await writeFile(path, new Uint8Array(100));
      expect(await errorCode(s.read(4096, 4096))).toBe('io');
    } finally {
      await s.close();
    }
  });

  it('large transfers (above the sync threshold) work in sync mode', async () => {
    const s = await NodeFileStore.open(join(root, 'large'), { create: true, io: 'sync' });
    try {
      const data = pattern(3 * 2 ** 20 + 17, 2);
      await s.write(11, data);
      equalBytes(await s.read(11, data.length), data, 'contents');
    } finally {
      await s.close();
    }
  });

  it('maps Node error codes to StrataError codes and keeps the cause', () => {
    const cases: [string, boolean, string][] = [
      ['ENOENT', false, 'not-found'],
      ['EEXIST', true, 'exists'],
      ['EROFS', true, 'read-only'],
      ['EACCES', true, 'read-only'],
      ['EPERM', true, 'read-only'],
      ['EACCES', false, 'io'],
      ['ENOSPC', true, 'quota'],
      ['EDQUOT', true, 'quota'],
      ['EIO', true, 'io'],
      ['EBUSY', true, 'locked'],
    ];
    for (const [code, writing, expected] of cases) {
      const cause = Object.assign(new Error(`${code}: boom`), { code });
      const e = nodeError(cause, 'do the thing', writing);
      expect(e.code, code).toBe(expected);
      expect(e.cause).toBe(cause);
      expect(e.message).toMatch(/^Cannot do the thing/);
    }
  });
});
