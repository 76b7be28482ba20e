import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const built = existsSync(BIN);

describe('the built CLI', () => {
  it.skipIf(!built)('runs as a script: --help, --version, a bad command (needs dist/: npm run build:ts)', () => {
    const help = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: stratadisk COMMAND/);
    const version = spawnSync(process.execPath, [BIN, '--version'], { encoding: 'utf8' });
    expect(version.stdout).toMatch(/^stratadisk \d+\.\d+\.\d+\n$/);
    const bad = spawnSync(process.execPath, [BIN, 'frobnicate'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('stratadisk: unknown command "frobnicate" (see `stratadisk --help`)\n');
  });
});
