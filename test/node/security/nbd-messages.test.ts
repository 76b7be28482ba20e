/**
 * What the NBD server tells clients about itself (issue 13, item 8): error replies carry no
 * absolute paths, process IDs or host names of the server. The operator's log keeps the detail.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { serveNbd } from '../../../src/interop/nbd/index.js';
import { flipBytes } from '../helpers/damage.js';
import { KiB, makeVolume, RawClient, tempDir } from '../interop/nbd-helpers.js';

const tmp = tempDir('sd-nbd-msg-');
afterAll(() => tmp.cleanup());

/** A structured reply chunk: flags, type, payload. */
async function chunk(c: RawClient): Promise<{ flags: number; type: number; payload: Buffer }> {
  const h = (await c.read(20, 120_000))!;
  expect(h.readUInt32BE(0)).toBe(0x668e33ef);
  const payload = (await c.read(h.readUInt32BE(16), 120_000))!;
  return { flags: h.readUInt16BE(4), type: h.readUInt16BE(6), payload };
}

function leaks(text: string, dir: string): string[] {
  const found: string[] = [];
  if (text.includes(dir)) found.push('the volume directory');
  if (/(^|[\s'"(=])\/[A-Za-z0-9._-]+\//.test(text)) found.push('an absolute path');
  if (new RegExp(`\\b${process.pid}\\b`).test(text)) found.push('the process ID');
  if (text.includes(hostname())) found.push('the host name');
  return found;
}

describe('NBD error messages', () => {
  it('a read of damaged data gets EIO with a message naming neither the directory, nor a pid, nor the host; the log gets the detail', async () => {
    const dir = join(tmp.dir, 'vol');
    await makeVolume(dir);
    flipBytes(join(dir, 'L000001.data'), 2 * 64 * KiB + 500);
    const logged: Error[] = [];
    const s = await serveNbd({ dir }, { readOnly: true, onDamage: (e) => logged.push(e) });
    try {
      const c = await RawClient.connect(s);
      await c.hello();
      expect('size' in (await c.go('', true))).toBe(true);
      c.request(0, 2 * 64 * KiB, 4096, 7n);
      const r = await chunk(c);
      expect(r.type).toBe(0x8001); // NBD_REPLY_TYPE_ERROR
      expect(r.payload.readUInt32BE(0)).toBe(5); // EIO
      const message = r.payload.toString('utf8', 6, 6 + r.payload.readUInt16BE(4));
      expect(message).toMatch(/checksum/);
      expect(leaks(message, dir)).toEqual([]);
      // the operator's log names the volume and the range
      expect(logged.map((e) => e.message).join('\n')).toMatch(/holds damaged data for bytes 131072-196607/);
      c.close();
    } finally {
      await s.close();
    }
  });

  it('an I/O failure of the volume (its files gone) reaches the client without the server paths', async () => {
    const dir = join(tmp.dir, 'vol2');
    await makeVolume(dir);
    const logged: Error[] = [];
    const s = await serveNbd({ dir }, { onRequestError: (e) => logged.push(e) });
    try {
      const c = await RawClient.connect(s);
      await c.hello();
      expect('size' in (await c.go('', true))).toBe(true);
      // the volume closed under the client: every request now fails inside the engine
      await s.volume.close();
      c.request(1, 0, 512, 9n, 0, new Uint8Array(512));
      const r = await chunk(c);
      expect(r.type).toBe(0x8001);
      const message = r.payload.toString('utf8', 6, 6 + r.payload.readUInt16BE(4));
      expect(leaks(message, dir)).toEqual([]);
      c.close();
    } finally {
      await s.close().catch(() => {});
    }
  });
});
