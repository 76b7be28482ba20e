/**
 * Loop devices for tests on real raw block devices: attach one over a fresh sparse file, or
 * learn why that cannot be done here (not Linux, not root, no losetup), so callers skip cleanly.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Loop {
  device: string;
  file: string;
  dir: string;
}

/** Attaches a loop device over a new file of `size` bytes, or returns why it cannot. */
export function attachLoop(size: number): Loop | string {
  if (process.platform !== 'linux') return 'loop devices are Linux-only';
  if (process.getuid?.() !== 0) return 'losetup needs root';
  const dir = mkdtempSync(join(tmpdir(), 'stratadisk-loop-'));
  const file = join(dir, 'backing.img');
  const fd = openSync(file, 'w');
  ftruncateSync(fd, size);
  closeSync(fd);
  try {
    const device = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    if (!device.startsWith('/dev/')) throw new Error(`unexpected losetup output: ${device}`);
    return { device, file, dir };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const stderr = (e as { stderr?: Buffer | string }).stderr?.toString().trim();
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'losetup is not installed (Debian package util-linux / mount)';
    return `losetup -f --show failed: ${stderr || String(e)}`;
  }
}

/** Detaches the device and removes its file (once; safe to call again). */
export function detachLoop(loop: Loop): void {
  if ((loop as { detached?: boolean }).detached) return;
  (loop as { detached?: boolean }).detached = true;
  try {
    execFileSync('losetup', ['-d', loop.device], { stdio: 'ignore' });
  } catch (e) {
    console.warn(`could not detach ${loop.device}: ${String(e)}; run: losetup -d ${loop.device}`);
  }
  rmSync(loop.dir, { recursive: true, force: true });
}
