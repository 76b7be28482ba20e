/**
 * `stratadisk resync`: --json shape, --verify exit status (as `compare`: 0 equal, 1 differing),
 * wrong kinds of files, --refresh, and a real Ctrl-C (SIGINT to a spawned CLI paused after its
 * first finished window by the progress hook), then a rerun that continues and ends equal.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, ok, tempDir } from '../cli/harness.js';
import { diverge, pickSegments, randomBytes } from './helpers.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const HOOK = new URL('../cli/fixtures/at-progress.mjs', import.meta.url).href;
const built = existsSync(BIN);

const MiB = 1024 * 1024;
const { dir, cleanup } = tempDir();
afterAll(cleanup);
let n = 0;
const p = (name: string) => join(dir, `${n++}-${name}`);

function pair(size: number, seg: number, diverged: number[], seed: number): { a: string; b: string; base: Uint8Array } {
  const base = randomBytes(size, seed);
  const a = p('a.raw');
  const b = p('b.raw');
  writeFileSync(a, base);
  writeFileSync(b, diverge(base, diverged, seg, seed + 1));
  return { a, b, base };
}

describe('stratadisk resync', () => {
  it('--verify: exit 1 and the list when segments differ, 0 when equal; --json has every field', async () => {
    const seg = 64 * 1024;
    const diverged = pickSegments(64, 3, 7);
    const { a, b, base } = pair(4 * MiB, seg, diverged, 1);
    const v = await cli(['resync', a, b, '--verify', '--json', '--segment-size', '64K']);
    expect(v.code).toBe(1);
    const r = JSON.parse(v.stdout) as Record<string, unknown>;
    expect(Object.keys(r).sort()).toEqual(
      ['verify', 'complete', 'size', 'segmentSize', 'segmentsCompared', 'segmentsDiffering', 'differingOffsets', 'copiedOffsets', 'resumedFrom', 'next', 'copiedBefore', 'bytesSentSrcToDst', 'bytesSentDstToSrc', 'bytesHashedSrc', 'bytesHashedDst', 'checksumsReused'].sort(),
    );
    expect(r).toMatchObject({ verify: true, complete: true, segmentsCompared: 64, segmentsDiffering: 3, differingOffsets: diverged.map((i) => i * seg), bytesSentSrcToDst: 0 });
    const text = await cli(['resync', a, b, '--verify', '--segment-size', '64K']);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('3 of 64 segments differ');
    const c = JSON.parse(await ok(['resync', a, b, '--json', '--segment-size', '64K'])) as Record<string, unknown>;
    expect(c).toMatchObject({ verify: false, complete: true, segmentsDiffering: 3, bytesSentSrcToDst: 3 * seg });
    expect(Buffer.compare(readFileSync(b), Buffer.from(base))).toBe(0);
    expect((await cli(['resync', a, b, '--verify'])).code).toBe(0);
    // a finished resync leaves no progress behind
    expect(existsSync(`${b}.resync/resync-progress.0`) || existsSync(`${b}.resync/resync-progress.1`)).toBe(false);
  });

  it('volume <-> raw file, and --refresh makes the volume\'s checksums valid (its side is not read again)', async () => {
    const { a, b } = pair(4 * MiB, MiB, [1], 3);
    const vol = p('vol');
    await ok(['create', vol, '--size', '4M']);
    await ok(['resync', a, vol]);
    // the resync left the destination's checksums valid: a refresh has nothing to hash
    const refreshed = JSON.parse(await ok(['resync', '--refresh', vol, '--json'])) as { valid: number; segments: number };
    expect(refreshed).toMatchObject({ valid: 4, segments: 4, hashed: 0 });
    const v = await cli(['resync', vol, b, '--verify', '--json']);
    expect(v.code).toBe(1);
    expect(JSON.parse(v.stdout)).toMatchObject({ differingOffsets: [MiB], bytesHashedSrc: 0, checksumsReused: { src: 4, dst: 0 } });
    expect(statSync(join(vol, 'resync-sums.0')).mode & 0o777).toBe(0o600);
  });

  it('refuses wrong kinds of files with a code (exit 2)', async () => {
    const { a } = pair(MiB, MiB, [], 5);
    const notVolume = p('empty-dir');
    mkdirSync(notVolume);
    const small = p('small.raw');
    writeFileSync(small, new Uint8Array(1000));
    const cases: [string[], string][] = [
      [['resync', a, p('missing')], 'not-found'],
      [['resync', a, small], 'invalid-argument'],
      [['resync', a, a], 'invalid-argument'],
      [['resync', a, '/dev/null'], 'invalid-argument'],
      [['resync', a, notVolume], 'not-found'],
      [['resync', '--refresh', a], 'invalid-argument'],
      [['resync', a, small, '--segment-size', '3000'], 'invalid-argument'],
    ];
    for (const [argv, code] of cases) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toContain(`stratadisk: ${code}:`);
    }
    expect((await cli(['resync', a])).code).toBe(2);
  });

  it.skipIf(!built)('Ctrl-C: exit 130, says what was copied; the rerun continues there and ends equal', async () => {
    const seg = 64 * 1024;
    // 8 MiB = 128 segments = 2 windows of 64: the pause comes after the first window
    const diverged = pickSegments(128, 10, 9);
    const { a, b, base } = pair(8 * MiB, seg, diverged, 7);
    const first = await runPaused(['resync', a, b, '--json', '--segment-size', '64K']);
    expect(first.code).toBe(130);
    expect(first.stderr).toContain('stratadisk: interrupted;');
    expect(first.stderr).toContain('run the same resync again');
    const r1 = JSON.parse(first.stdout) as { complete: boolean; next: number; copiedOffsets: number[]; error: { code: string } };
    expect(r1).toMatchObject({ complete: false, next: 64, error: { code: 'aborted' } });
    // the first window was finished (the pause came after it); copies of the second one that
    // started before the interrupt was seen are listed too
    const want = diverged.map((i) => i * seg);
    expect(r1.copiedOffsets.filter((o) => o < 64 * seg)).toEqual(want.filter((o) => o < 64 * seg));
    expect(r1.copiedOffsets.every((o) => want.includes(o))).toBe(true);
    // the progress waits beside the destination, private
    expect(statSync(`${b}.resync`).mode & 0o777).toBe(0o700);
    const r2 = JSON.parse(await ok(['resync', a, b, '--json', '--segment-size', '64K'])) as { resumedFrom: number; copiedOffsets: number[]; copiedBefore: number; segmentsCompared: number };
    expect(r2).toMatchObject({ resumedFrom: 64, segmentsCompared: 64 });
    // the two runs together copied every diverged segment exactly once
    expect([...r1.copiedOffsets, ...r2.copiedOffsets].sort((x, y) => x - y)).toEqual(want);
    expect(r2.copiedBefore).toBe(diverged.filter((i) => i < 64).length);
    expect(Buffer.compare(readFileSync(b), Buffer.from(base))).toBe(0);
    // complete: the progress directory is gone
    expect(existsSync(`${b}.resync`)).toBe(false);
  }, 60_000);

  it('refuses a symbolic link where the progress directory goes, before writing anything', async () => {
    const seg = 64 * 1024;
    const { a, b } = pair(MiB, seg, [3], 11);
    const before = readFileSync(b);
    const elsewhere = p('elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, `${b}.resync`);
    const r = await cli(['resync', a, b, '--segment-size', '64K']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stratadisk: unsafe-path:');
    expect(Buffer.compare(readFileSync(b), before)).toBe(0);
    expect(readdirSync(elsewhere)).toEqual([]);
  });
});

/** Spawn the CLI paused at its first progress bar (after the first window), send SIGINT, let it go on. */
function runPaused(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...argv], {
      env: { ...process.env, STRATADISK_TEST_AT_PROGRESS: 'pause', STRATADISK_TEST_AT_LABEL: 'resync' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let sent = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (!sent && stderr.includes('@@copy-started@@')) {
        sent = true;
        child.kill('SIGINT');
        child.stdin.write('x');
      }
    });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
