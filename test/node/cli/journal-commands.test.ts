import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StrataError } from '../../../src/errors.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { serveNbd } from '../../../src/interop/nbd/index.js';
import { have, run as runTool, runOk } from '../interop/nbd-helpers.js';
import { cli, KiB, pattern, tempDir } from './harness.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const built = existsSync(BIN);

/** Runs the built CLI (needs dist/: `npm run build`). */
function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
function ok(...args: string[]): string {
  const r = run(...args);
  if (r.code !== 0) throw new Error(`stratadisk ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(!built)('journal commands (built CLI)', () => {
  let tmp: ReturnType<typeof tempDir>;
  let vol: string;
  const a = pattern(64 * KiB, 1);
  const b = pattern(64 * KiB, 2);
  beforeEach(() => {
    tmp = tempDir();
    vol = join(tmp.dir, 'vol');
    writeFileSync(join(tmp.dir, 'a.bin'), a);
    writeFileSync(join(tmp.dir, 'b.bin'), b);
    ok('create', vol, '--size', '1M');
  });
  afterEach(() => tmp.cleanup());

  /** enable, write a, mark "first", write b over it */
  function history(): void {
    ok('journal', 'enable', vol);
    ok('write', vol, '--offset', '4096', join(tmp.dir, 'a.bin'));
    expect(ok('mark', vol, 'first')).toMatch(/Marked "first" at seq:\d+/);
    ok('write', vol, '--offset', '4096', join(tmp.dir, 'b.bin'));
  }

  function region(file: string): Uint8Array {
    return new Uint8Array(readFileSync(file)).subarray(4096, 4096 + 64 * KiB);
  }

  it('enable, write, mark, marks --json, status --json', () => {
    history();
    const marks = JSON.parse(ok('marks', vol, '--json')) as { label: string; point: number; seq: number; time: string }[];
    expect(marks).toHaveLength(1);
    expect(marks[0]!.label).toBe('first');
    expect(marks[0]!.seq).toBeGreaterThan(marks[0]!.point);
    expect(new Date(marks[0]!.time).toISOString()).toBe(marks[0]!.time);
    const st = JSON.parse(ok('journal', 'status', vol, '--json')) as { marks: number; records: number; lastFlush: number; where: string; recovered: unknown };
    expect(st.marks).toBe(1);
    expect(st.where).toBe('');
    expect(st.recovered).toBeNull();
    expect(st.lastFlush).toBeGreaterThan(marks[0]!.point);
  });

  it('export DIR@mark:X equals the data at the mark; DIR@journal.base is the volume before the log', () => {
    history();
    const atMark = join(tmp.dir, 'mark.raw');
    ok('export', `${vol}@mark:first`, atMark);
    expect(region(atMark)).toEqual(a);
    const live = join(tmp.dir, 'live.raw');
    ok('export', vol, live);
    expect(region(live)).toEqual(b);
    const base = join(tmp.dir, 'base.raw');
    ok('export', `${vol}@journal.base`, base);
    expect(region(base)).toEqual(new Uint8Array(64 * KiB));
    // compare reads points too
    expect(run('compare', `${vol}@mark:first`, atMark).code).toBe(0);
    expect(run('compare', `${vol}@mark:first`, live).code).toBe(1);
  });

  it('journal export then import into a volume just enabled from the CLI: entry N is seq N, and the volumes are identical', () => {
    history();
    const log = join(tmp.dir, 'log.bin');
    ok('journal', 'export', vol, log);
    const w = join(tmp.dir, 'w');
    ok('create', w, '--size', '1M');
    ok('journal', 'enable', w);
    expect(ok('journal', 'import', w, log)).toMatch(/Entry N is .*@seq:N\./);
    expect(run('compare', vol, w).code).toBe(0);
  });

  it('a refused enable creates nothing (no --store directory left behind)', () => {
    history();
    const logs = join(tmp.dir, 'logs');
    const r = run('journal', 'enable', vol, '--store', logs);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: exists: /);
    expect(existsSync(logs)).toBe(false);
  });

  it('restore to a mark rolls the live volume back, and can be undone', () => {
    history();
    const out = ok('restore', vol, 'mark:first');
    const undo = /restore \S+ (mark:before-restore-\S+)`/.exec(out)?.[1];
    expect(undo).toBeDefined();
    const live = join(tmp.dir, 'live.raw');
    ok('export', vol, live);
    expect(region(live)).toEqual(a);
    ok('restore', vol, undo!);
    ok('export', vol, live);
    expect(region(live)).toEqual(b);
  });

  it('restore to a point that is not a mark needs --force', () => {
    history();
    const r = run('restore', vol, 'base');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: invalid-argument: The base of the log is not a mark: .*--force/);
    // nothing was changed, not even a mark added
    expect(JSON.parse(ok('marks', vol, '--json'))).toHaveLength(1);
    ok('restore', vol, 'base', '--force');
    const live = join(tmp.dir, 'live.raw');
    ok('export', vol, live);
    expect(region(live)).toEqual(new Uint8Array(64 * KiB));
  });

  it('a writer that does not attach the log is refused; read-only opens still work', async () => {
    history();
    const e = await Volume.open(new NodeDirNamespace(vol)).then(
      async (v) => {
        await v.close();
        return null;
      },
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(StrataError);
    expect((e as StrataError).code).toBe('unsupported');
    const ro = await Volume.open(new NodeDirNamespace(vol, { readOnly: true }), { readOnly: true });
    expect(await ro.read(4096, 64 * KiB)).toEqual(b);
    await ro.close();
  });

  it('--store keeps the log in another directory (0700); disable deletes it and writes go on unlogged', () => {
    const store = join(tmp.dir, 'logs', 'vol');
    ok('journal', 'enable', vol, '--store', store);
    expect(statSync(store).mode & 0o777).toBe(0o700);
    ok('write', vol, '--offset', '4096', join(tmp.dir, 'a.bin'));
    ok('mark', vol, 'm');
    const st = JSON.parse(ok('journal', 'status', vol, '--json')) as { where: string; marks: number };
    expect(st.where).toBe(store);
    const atMark = join(tmp.dir, 'mark.raw');
    ok('export', `${vol}@mark:m`, atMark);
    expect(region(atMark)).toEqual(a);
    ok('journal', 'disable', vol);
    const r = run('journal', 'status', vol);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^stratadisk: not-found: /);
    ok('write', vol, '--offset', '4096', join(tmp.dir, 'b.bin'));
  });

  it('points on a volume without a log, unknown marks and bad points are errors with codes', () => {
    expect(run('export', `${vol}@mark:x`, join(tmp.dir, 'x.raw')).stderr).toMatch(/^stratadisk: not-found: .*keeps no write log/);
    ok('journal', 'enable', vol);
    expect(run('export', `${vol}@mark:nope`, join(tmp.dir, 'x.raw')).stderr).toMatch(/^stratadisk: not-found: No mark "nope"/);
    expect(run('export', `${vol}@time:garbage`, join(tmp.dir, 'x.raw')).stderr).toMatch(/^stratadisk: invalid-argument: /);
    expect(run('export', `${vol}@seq:999`, join(tmp.dir, 'x.raw')).stderr).toMatch(/^stratadisk: out-of-range: /);
    // a point is read-only: writers refuse it
    expect(run('write', `${vol}@mark:x`, '--offset', '0', join(tmp.dir, 'a.bin')).stderr).toMatch(/names a point of the write log, which is read-only/);
    expect(run('journal', 'enable', vol).stderr).toMatch(/^stratadisk: exists: /);
  });
});

describe('restore cancelled', () => {
  it('says what was kept and how to go back', async () => {
    const tmp = tempDir();
    try {
      const vol = join(tmp.dir, 'vol');
      const file = join(tmp.dir, 'a.bin');
      writeFileSync(file, pattern(64 * KiB, 3));
      expect((await cli(['create', vol, '--size', '1M'])).code).toBe(0);
      expect((await cli(['journal', 'enable', vol])).code).toBe(0);
      expect((await cli(['mark', vol, 'empty'])).code).toBe(0);
      expect((await cli(['write', vol, '--offset', '0', file])).code).toBe(0);
      const ac = new AbortController();
      ac.abort();
      const r = await cli(['restore', vol, 'mark:empty'], { signal: ac.signal });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/interrupted; .*part way to mark:empty; run the restore again.*restore .* mark:before-restore-/);
      // the data is still the written one (nothing was restored), and a second run finishes it
      expect((await cli(['restore', vol, 'mark:empty'])).code).toBe(0);
      const ro = await Volume.open(new NodeDirNamespace(vol, { readOnly: true }), { readOnly: true });
      expect(await ro.read(0, 64 * KiB)).toEqual(new Uint8Array(64 * KiB));
      await ro.close();
    } finally {
      tmp.cleanup();
    }
  });
});

describe.skipIf(!have('nbdcopy') || !have('qemu-io'))('serve-nbd and the write log', () => {
  it('serves DIR@mark:X read-only, and a writable server logs the NBD writes', async () => {
    const tmp = tempDir();
    try {
      const vol = join(tmp.dir, 'vol');
      const file = join(tmp.dir, 'a.bin');
      const a = pattern(64 * KiB, 4);
      writeFileSync(file, a);
      expect((await cli(['create', vol, '--size', '1M'])).code).toBe(0);
      expect((await cli(['journal', 'enable', vol])).code).toBe(0);
      expect((await cli(['write', vol, '--offset', '0', file])).code).toBe(0);
      expect((await cli(['mark', vol, 'first'])).code).toBe(0);
      // a writable server attaches the log: its writes are logged
      const w = await serveNbd({ dir: vol }, { socket: join(tmp.dir, 'w.sock') });
      try {
        await runOk('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 0 64k', '-c', 'flush', w.uri]);
      } finally {
        await w.close();
      }
      expect((await cli(['mark', vol, 'second'])).code).toBe(0);
      // the point, served: reads the data at the mark, refuses writes
      const p = await serveNbd({ dir: vol, point: 'mark:first' }, { socket: join(tmp.dir, 'p.sock') });
      try {
        const out = join(tmp.dir, 'p.raw');
        await runOk('nbdcopy', [p.uri, out]);
        expect(new Uint8Array(readFileSync(out)).subarray(0, 64 * KiB)).toEqual(a);
        expect((await runTool('qemu-io', ['-f', 'raw', '-c', 'write 0 4k', p.uri])).code).not.toBe(0);
      } finally {
        await p.close();
      }
      const out2 = join(tmp.dir, 'second.raw');
      expect((await cli(['export', `${vol}@mark:second`, out2])).code).toBe(0);
      expect(new Uint8Array(readFileSync(out2)).subarray(0, 64 * KiB)).toEqual(new Uint8Array(64 * KiB).fill(0x5a));
    } finally {
      tmp.cleanup();
    }
  });
});

describe('the base snapshot of the log', () => {
  it('delete-snapshot journal.base and commit --drop-snapshot are refused while the log is on', async () => {
    const tmp = tempDir();
    try {
      const vol = join(tmp.dir, 'vol');
      expect((await cli(['create', vol, '--size', '1M'])).code).toBe(0);
      expect((await cli(['journal', 'enable', vol])).code).toBe(0);
      const d = await cli(['delete-snapshot', vol, 'journal.base']);
      expect(d.code).toBe(2);
      expect(d.stderr).toMatch(/^stratadisk: invalid-argument: Deleting snapshot journal\.base .*journal disable/);
      const c = await cli(['commit', vol, '--drop-snapshot']);
      expect(c.code).toBe(2);
      expect(c.stderr).toMatch(/^stratadisk: invalid-argument: commit --drop-snapshot could delete snapshot journal\.base/);
      // the log still works
      expect((await cli(['mark', vol, 'still'])).code).toBe(0);
      expect((await cli(['journal', 'disable', vol])).code).toBe(0);
      expect((await cli(['delete-snapshot', vol, 'journal.base'])).code).toBe(0);
    } finally {
      tmp.cleanup();
    }
  });
});
