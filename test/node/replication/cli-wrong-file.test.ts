/**
 * The wrong kind of file where a volume belongs: `replicate` says what SRC must be (it used to
 * report a raw "connect ENOTDIR" from probing for a control socket inside a file).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../cli/harness.js';
import { built, killAll, run } from './cli-helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  killAll();
  for (const c of cleanups.splice(0)) c();
});

describe.skipIf(!built)('replicate: the wrong kind of file', () => {
  it('a regular file as SRC is refused as not a volume directory, and left unchanged', async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const raw = join(dir, 'disk.img');
    writeFileSync(raw, Buffer.alloc(4096, 7));
    const r = await run(['replicate', raw, 'tcp://127.0.0.1:9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: invalid-argument: .*disk\.img is not a directory; a volume is a directory/m);
    expect(r.stderr).not.toMatch(/ENOTDIR|control socket/i);
  });
});
