/** serve-nbd on a damaged volume: EIO for the damaged request only; the server keeps serving. */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli } from '../cli/harness.js';
import { flipBytes } from '../helpers/damage.js';
import { have, KiB, makeVolume, run, tempDir } from './nbd-helpers.js';

/** The bytes `qemu-io read -v` printed (hex dump lines "00000000:  xx xx ..."). */
function dumped(out: string): number[] {
  const bytes: number[] = [];
  for (const line of out.split('\n')) {
    const m = /^[0-9a-f]{8}:\s+((?:[0-9a-f]{2}\s+){1,16})/.exec(line);
    if (m) for (const h of m[1]!.trim().split(/\s+/)) bytes.push(parseInt(h, 16));
  }
  return bytes;
}

describe.skipIf(!have('qemu-io'))('serve-nbd verifies what it reads', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('answers EIO for a read of a damaged block, and serves every other read', async () => {
    const dir = join(tmp.dir, 'vol');
    const { live } = await makeVolume(dir);
    // block 2 of the base layer sits in slot 2 (the first 1 MiB was written in order)
    flipBytes(join(dir, 'L000001.data'), 2 * 64 * KiB + 500);
    const sock = join(tmp.dir, 'v.sock');
    const s = startCli(['serve-nbd', dir, '--socket', sock, '--read-only']);
    const uri = await s.firstLine();
    try {
      const r = await run('qemu-io', ['-r', '-f', 'raw', '-c', `read ${2 * 64 * KiB + 4096} 4096`, '-c', `read -v ${64 * KiB} 512`, '-c', `read -P 0 ${256 * KiB} ${256 * KiB}`, uri]);
      const out = r.stdout + r.stderr;
      expect(out).toMatch(/read failed: Input\/output error/);
      expect(dumped(out)).toEqual([...live.subarray(64 * KiB, 64 * KiB + 512)]);
      expect(out).not.toMatch(/Pattern verification failed/);
      // the server is still up for a new connection, and still refuses the damaged range
      const again = await run('qemu-io', ['-r', '-f', 'raw', '-c', `read -v ${3 * 64 * KiB} 256`, '-c', `read ${2 * 64 * KiB} ${64 * KiB}`, uri]);
      expect(dumped(again.stdout)).toEqual([...live.subarray(3 * 64 * KiB, 3 * 64 * KiB + 256)]);
      expect(again.stdout + again.stderr).toMatch(/read failed: Input\/output error/);
      // the operator is told, naming the volume, layer and range
      expect(s.out().stderr).toMatch(/serve-nbd: Volume .*layer L000001 holds damaged data for bytes 131072-196607.*the client got EIO/);
    } finally {
      s.stop();
      await s.done;
    }
  });
});
