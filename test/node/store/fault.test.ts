import { describe, expect, it } from 'vitest';
import { FaultController, FaultNamespace } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { namespaceConformance, storeConformance } from './conformance.js';

// Without a fault plan the fault-injecting wrapper is an ordinary store and must pass the suite.
storeConformance('FaultStore (no faults)', async () => {
  const ns = new FaultNamespace(new MemoryNamespace(), new FaultController({}));
  return {
    open: () => ns.open('disk', { create: true }),
    reopen: () => ns.open('disk'),
    openReadOnly: () => ns.open('disk', { readOnly: true }),
    cleanup: async () => {},
  };
});

namespaceConformance('FaultNamespace (no faults)', async () => {
  const inner = new MemoryNamespace();
  const ctl = new FaultController({});
  return {
    namespace: new FaultNamespace(inner, ctl),
    reopen: async () => new FaultNamespace(new MemoryNamespace({ files: inner.files }), ctl),
    readOnly: async () => new FaultNamespace(new MemoryNamespace({ files: inner.files, readOnly: true }), ctl),
    cleanup: async () => {},
  };
});

describe('fault injection', () => {
  async function setup(plan: ConstructorParameters<typeof FaultController>[0]) {
    const inner = new MemoryNamespace();
    const ctl = new FaultController(plan);
    const ns = new FaultNamespace(inner, ctl);
    const s = await ns.open('f', { create: true });
    return { inner, ctl, s };
  }

  it('drop-unflushed keeps exactly the flushed bytes', async () => {
    const { inner, ctl, s } = await setup({});
    await s.write(0, new Uint8Array(100).fill(1));
    await s.flush();
    await s.write(50, new Uint8Array(100).fill(2));
    await s.truncate(120);
    await ctl.crash('drop-unflushed');
    const after = await inner.open('f');
    expect(after.size).toBe(100);
    expect(await after.read(0, 100)).toEqual(new Uint8Array(100).fill(1));
  });

  it('keep-unflushed keeps everything; the crashing write is torn and later calls fail', async () => {
    const { inner, ctl, s } = await setup({ crashAt: 1, tear: 'prefix', seed: 9 });
    await s.write(0, new Uint8Array(10).fill(1));
    await expect(s.write(0, new Uint8Array(4096).fill(2))).rejects.toMatchObject({ code: 'io' });
    await expect(s.read(0, 1)).rejects.toMatchObject({ code: 'io' });
    await ctl.crash('keep-unflushed');
    const got = inner.files.get('f')!.contents();
    expect(got.length).toBeLessThanOrEqual(4096);
    expect(got.length).toBeGreaterThanOrEqual(10);
    // whatever landed is a prefix of the torn write over the old bytes
    for (let i = 0; i < got.length; i++) expect([1, 2, 0]).toContain(got[i]);
  });

  it('failAt fails one call with io and changes nothing; the store keeps working', async () => {
    const { s } = await setup({ failAt: new Set([1]) });
    await s.write(0, new Uint8Array([1, 2, 3]));
    await expect(s.write(0, new Uint8Array([9]))).rejects.toMatchObject({ code: 'io' });
    expect(await s.read(0, 3)).toEqual(new Uint8Array([1, 2, 3]));
    await s.write(0, new Uint8Array([7]));
    expect(await s.read(0, 1)).toEqual(new Uint8Array([7]));
  });

  it('sector tears change only whole sectors of the torn write', async () => {
    const { inner, ctl, s } = await setup({ crashAt: 1, tear: 'sectors', seed: 4, sectorSize: 512 });
    await s.write(0, new Uint8Array(8 * 512).fill(1));
    await expect(s.write(0, new Uint8Array(8 * 512).fill(2))).rejects.toMatchObject({ code: 'io' });
    await ctl.crash('keep-unflushed');
    const st = await inner.open('f');
    const b = await st.read(0, 8 * 512);
    for (let sec = 0; sec < 8; sec++) {
      const part = b.subarray(sec * 512, (sec + 1) * 512);
      expect(part.every((x) => x === part[0])).toBe(true);
    }
  });
});
