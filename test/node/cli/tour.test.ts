import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cli, tempDir } from './harness.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

describe('tour', () => {
  it('walks through every step in DIR and keeps the volume', async () => {
    const r = await cli(['tour', dir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const cmd of ['create', 'import', 'info', 'snapshot', 'write', 'map', 'revert', 'delete-snapshot', 'snapshots', 'check', 'export', 'compare']) {
      expect(r.stdout).toContain(`$ stratadisk ${cmd} `);
    }
    expect(r.stdout).not.toMatch(/exit code/);
    expect(r.stdout).toContain('vol@installed:     "stratadisk tour');
    expect(r.stdout).toContain('live volume:       "CHANGED!');
    expect(r.stdout).toMatch(/Identical: 256 MiB/);
    // Command lines and their output show paths as $TOUR; only the first and last lines name DIR.
    expect(r.stdout.trim().split('\n').slice(1, -1).join('\n')).not.toContain(dir);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`Done. The volume is in ${join(dir, 'vol')}.`);
    expect((await cli(['check', join(dir, 'vol')])).code).toBe(0);
  });

  it('stops at once when cancelled, exit 130', async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await cli(['tour', join(dir, 't')], { signal: ac.signal });
    expect(r.code).toBe(130);
  });
});
