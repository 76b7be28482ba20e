/** `stratadisk serve-nbd`: prints the URI, serves, and on Ctrl-C flushes and closes. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli } from '../cli/harness.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { have, KiB, makeVolume, runOk, tempDir } from './nbd-helpers.js';

describe.skipIf(!have('qemu-io') || !have('nbdcopy'))('stratadisk serve-nbd', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('serves DIR, takes writes, and flushes them on interrupt', async () => {
    const dir = join(tmp.dir, 'vol');
    await makeVolume(dir);
    const s = startCli(['serve-nbd', dir, '--port', '0', '--insecure']);
    const uri = await s.firstLine();
    expect(uri).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/$/);
    await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3c 64k 64k', uri]);
    s.stop();
    expect(await s.done).toBe(0);
    const v = await Volume.open(new NodeDirNamespace(dir, { readOnly: true }), { readOnly: true });
    try {
      expect([...(await v.read(64 * KiB, 64 * KiB))].every((b) => b === 0x3c)).toBe(true);
    } finally {
      await v.close();
    }
  });

  it('serves DIR@NAME read-only over a Unix socket', async () => {
    const dir = join(tmp.dir, 'vol2');
    const { snap } = await makeVolume(dir);
    const sock = join(tmp.dir, 's.sock');
    const s = startCli(['serve-nbd', `${dir}@s1`, '--socket', sock]);
    const uri = await s.firstLine();
    expect(uri).toBe(`nbd+unix:///?socket=${sock}`);
    const out = join(tmp.dir, 's1.raw');
    await runOk('nbdcopy', [uri, out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(snap))).toBe(0);
    s.stop();
    expect(await s.done).toBe(0);
  });

  it('rejects --port with --socket, and a bad port', async () => {
    for (const argv of [['serve-nbd', tmp.dir, '--port', '1', '--socket', 'x'], ['serve-nbd', tmp.dir, '--port', 'abc']]) {
      const s = startCli(argv);
      expect(await s.done).toBe(2);
    }
  });
});
