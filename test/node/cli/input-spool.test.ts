/** spoolInput: Ctrl-C while the producer is idle (an open pipe that sends nothing more) stops at once. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { spoolInput } from '../../../src/cli/input-spool.js';

const dir = mkdtempSync(join(tmpdir(), 'stratadisk-spool-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('spoolInput', () => {
  it('an abort while the input waits for more data rejects with aborted, and leaves no spool file', { timeout: 20_000 }, async () => {
    for (const size of [1 << 20, (32 << 20) + 5]) {
      const input = new PassThrough();
      const ac = new AbortController();
      const p = spoolInput(input, 64 << 20, dir, 'the room', ac.signal);
      input.write(Buffer.alloc(size, 7));
      // let it read all of it, so that its next read is pending on an open, idle pipe
      await new Promise<void>((resolve) => {
        const check = () => (input.readableLength === 0 ? resolve() : setImmediate(check));
        check();
      });
      await new Promise((r) => setTimeout(r, 20));
      ac.abort();
      // (a hang shows as this test's timeout)
      await expect(p).rejects.toMatchObject({ code: 'aborted' });
      expect(readdirSync(dir)).toEqual([]);
      // and the input is let go: a stream left open with a read pending keeps its pipe, and so
      // the process, alive until the producer closes it (seen as a Ctrl-C that did not exit)
      expect(input.destroyed).toBe(true);
    }
  });
});
