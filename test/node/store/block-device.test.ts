/**
 * NodeFileStore over a real raw block device: a loop device over a 64 MiB file. Needs root and
 * a working `losetup`; elsewhere every case is skipped with the reason printed.
 */
import { statSync, openSync, readSync, closeSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { attachLoop, detachLoop, type Loop } from '../helpers/loop.js';
import { NodeFileStore, type NodeIoMode } from '../../../src/store/node-file.js';
import { equalBytes, errorCode, pattern, storeConformance } from './conformance.js';

const FILE_SIZE = 64 * 2 ** 20;

const loop = attachLoop(FILE_SIZE);
const available = typeof loop !== 'string';
if (typeof loop === 'string') {
  console.warn(`[block-device.test] skipping raw block device tests: ${loop}`);
} else {
  // afterAll runs even when tests fail; the exit hook covers a crash between here and there.
  process.once('exit', () => detachLoop(loop));
}
afterAll(() => {
  if (typeof loop !== 'string') detachLoop(loop);
});

const device = typeof loop === 'string' ? '' : loop.device;

describe.skipIf(!available)(`raw block device (${available ? device : 'unavailable'})`, () => {
  for (const io of ['async', 'sync'] as NodeIoMode[]) {
    storeConformance(`NodeFileStore on a loop device (io: ${io})`, async () => ({
      open: () => NodeFileStore.open(device, { io }),
      reopen: () => NodeFileStore.open(device, { io }),
      openReadOnly: () => NodeFileStore.open(device, { readOnly: true, io }),
      cleanup: async () => {},
      fixedSize: FILE_SIZE,
    }));
  }

  it('reads the device size from the kernel (fstat says 0)', async () => {
    expect(statSync(device).size).toBe(0);
    const s = await NodeFileStore.open(device, { readOnly: true });
    try {
      expect(s.isBlockDevice).toBe(true);
      expect(s.resizable).toBe(false);
      expect(s.io).toBe('async');
      expect(s.size).toBe(FILE_SIZE);
      expect(s.size).toBe(statSync((loop as Loop).file).size);
    } finally {
      await s.close();
    }
  });

  it('writes reach the backing file after flush', async () => {
    const s = await NodeFileStore.open(device);
    const data = pattern(65_536, 77);
    const at = 5 * 2 ** 20 + 4096;
    try {
      await s.write(at, data);
      await s.flush();
    } finally {
      await s.close();
    }
    const fd = openSync((loop as Loop).file, 'r');
    try {
      const back = new Uint8Array(data.length);
      readSync(fd, back, 0, back.length, at);
      equalBytes(back, data, 'backing file');
    } finally {
      closeSync(fd);
    }
  });

  it('create on an existing device opens it as is', async () => {
    const s = await NodeFileStore.open(device, { create: true });
    try {
      expect(s.size).toBe(FILE_SIZE);
      expect(await errorCode(s.truncate(0))).toBe('unsupported');
    } finally {
      await s.close();
    }
  });
});

