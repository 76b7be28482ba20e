import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../../src/cli/commands/index.js';
import { parseTarget } from '../../../src/cli/target.js';
import { cli, ok, tempDir } from './harness.js';

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = tempDir()));
afterEach(() => cleanup());

/** A failure is exactly one line on stderr, prefixed, with no stack trace, and nothing on stdout. */
function expectOneLineError(r: { code: number; stdout: string; stderr: string }, code = 2): void {
  expect(r.code).toBe(code);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^stratadisk: /);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe('help and version', () => {
  it('--help, -h and help list every command', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const out = await ok(argv);
      expect(out).toMatch(/^Usage: stratadisk COMMAND/);
      for (const c of COMMANDS) expect(out).toContain(`  ${c.name} `);
    }
  });

  it('COMMAND --help and help COMMAND print its usage', async () => {
    for (const c of COMMANDS) {
      const a = await ok([c.name, '--help']);
      expect(a).toContain(`Usage: stratadisk ${c.usage}`);
      expect(await ok(['help', c.name])).toBe(a);
    }
    expect(await ok(['create', '-h'])).toContain('--block-size');
  });

  it('--version prints the package version', async () => {
    expect(await ok(['--version'])).toMatch(/^stratadisk \d+\.\d+\.\d+/);
  });

  it('no arguments prints usage on stderr and exits 2', async () => {
    const r = await cli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Usage: stratadisk/);
  });
});

describe('bad arguments', () => {
  it('unknown command or option', async () => {
    expectOneLineError(await cli(['frobnicate']));
    expect((await cli(['frobnicate'])).stderr).toMatch(/unknown command "frobnicate"/);
    expectOneLineError(await cli(['--frob']));
    expectOneLineError(await cli(['help', 'frobnicate']));
    const r = await cli(['info', dir, '--frob']);
    expectOneLineError(r);
    expect(r.stderr).toMatch(/^stratadisk: info: Unknown option '--frob'.*stratadisk info --help/);
  });

  it('missing and extra positionals, missing and bad option values', async () => {
    expectOneLineError(await cli(['create']));
    expectOneLineError(await cli(['create', join(dir, 'v')]));
    expect((await cli(['create', join(dir, 'v')])).stderr).toMatch(/--size is required/);
    expectOneLineError(await cli(['create', join(dir, 'v'), '--size']));
    expectOneLineError(await cli(['create', join(dir, 'v'), '--size', 'lots']));
    expectOneLineError(await cli(['create', join(dir, 'v'), '--size', '1.5']));
    expectOneLineError(await cli(['create', join(dir, 'v'), '--size', '1G', '--block-size', '1000']));
    expectOneLineError(await cli(['create', join(dir, 'v'), 'extra', '--size', '1G']));
    expect(existsSync(join(dir, 'v', 'manifest-a'))).toBe(false);
    expectOneLineError(await cli(['snapshot', dir]));
    expectOneLineError(await cli(['compare', dir]));
    expectOneLineError(await cli(['info', '']));
    expectOneLineError(await cli(['info', '--json', '--json=1']));
  });

  it('bad input: missing volume, a file where a directory belongs, a missing import file', async () => {
    const vol = join(dir, 'vol');
    expectOneLineError(await cli(['info', vol]));
    await ok(['create', vol, '--size', '1M']);
    const r = await cli(['import', vol, join(dir, 'missing.img')]);
    expectOneLineError(r);
    expect(r.stderr).toMatch(/^stratadisk: not-found: /);
    expectOneLineError(await cli(['import', vol, dir]));
    expectOneLineError(await cli(['info', join(vol, 'manifest-a')]));
  });
});

describe('DIR@NAME', () => {
  it('splits at the last @ unless the whole path exists', () => {
    expect(parseTarget('/a/b@snap', true, 'x')).toEqual({ dir: '/a/b', snapshot: 'snap' });
    expect(parseTarget('/a/b@c@d', true, 'x')).toEqual({ dir: '/a/b@c', snapshot: 'd' });
    expect(parseTarget('/a/b', true, 'x')).toEqual({ dir: '/a/b' });
    expect(parseTarget('/a@x/b', true, 'x')).toEqual({ dir: '/a@x/b' });
    expect(parseTarget(dir, true, 'x')).toEqual({ dir });
    expect(() => parseTarget('/a/b@snap', false, 'write')).toThrow(/read-only/);
  });
});
