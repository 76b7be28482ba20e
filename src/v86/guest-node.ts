/** Node: load the guest built by `.ci/build-guest.sh` from build/guest/ (Node only: not exported to pages). */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StrataError } from '../errors.js';
import { GUEST_FILES, type GuestImages } from './guest.js';

/** build/guest/ of this package (dist/v86/ and src/v86/ are both two levels down). */
export const GUEST_DIR = fileURLToPath(new URL('../../build/guest/', import.meta.url));

/** The path of v86.wasm in the installed `v86` package (a peer the application installs). */
export function v86WasmPath(): string {
  return createRequire(import.meta.url).resolve('v86/build/v86.wasm');
}

/** The installed `v86` package's version (for installFlushBarrier's errors). */
export function v86Version(): string {
  return (createRequire(import.meta.url)('v86/package.json') as { version: string }).version;
}

/** Why the guest is not there, or undefined when it is. */
export function guestMissing(dir = GUEST_DIR): string | undefined {
  for (const f of Object.values(GUEST_FILES)) {
    if (!existsSync(join(dir, f))) return `${join(dir, f)} is missing: run \`bash .ci/build-guest.sh\` as root (it needs apt-get)`;
  }
  return undefined;
}

export async function loadGuest(dir = GUEST_DIR): Promise<GuestImages> {
  const missing = guestMissing(dir);
  if (missing) throw new StrataError('not-found', `The v86 test guest is not built: ${missing}.`);
  const buf = async (f: string) => {
    const b = await readFile(join(dir, f));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  };
  const manifest = JSON.parse(await readFile(join(dir, GUEST_FILES.manifest), 'utf8')) as { cmdline: string };
  return {
    bios: await buf(GUEST_FILES.bios),
    vgaBios: await buf(GUEST_FILES.vgaBios),
    kernel: await buf(GUEST_FILES.kernel),
    initrd: await buf(GUEST_FILES.initrd),
    cmdline: manifest.cmdline,
  };
}
