/**
 * The test guest built by `.ci/build-guest.sh` (SeaBIOS, a Debian i386 kernel, a busybox
 * initramfs whose /init formats /dev/sda with ext2 on first boot, mounts it on /mnt and runs a
 * shell on ttyS0), and the v86 options that boot it with a given hard disk.
 */
import { StrataError } from '../errors.js';
export interface GuestImages {
  bios: ArrayBuffer;
  vgaBios: ArrayBuffer;
  kernel: ArrayBuffer;
  initrd: ArrayBuffer;
  cmdline: string;
}

/** The files of build/guest/ and what manifest.json says of them. */
export const GUEST_FILES = { bios: 'bios.bin', vgaBios: 'vgabios.bin', kernel: 'vmlinuz', initrd: 'initrd.img', manifest: 'manifest.json' } as const;

/** What the guest's /init prints once the shell is about to start. */
export const GUEST_READY = 'guest-ready';

/** 128 MiB: the Debian 686 kernel with its initramfs needs more than v86's default 64 MiB. */
export const GUEST_MEMORY = 128 * 1024 * 1024;

export interface GuestBootOptions {
  /** v86.wasm's URL or path. */
  wasmPath: string;
  /** The hard disk: a V86Disk, or `{ buffer: ArrayBuffer }` for v86's own in-memory disk. */
  hda: object;
  memorySize?: number;
  autostart?: boolean;
  /** v86's screen container (pages only). */
  screenContainer?: HTMLElement;
}

/** Options for `new V86(...)` that boot the guest. */
export function guestOptions(images: GuestImages, o: GuestBootOptions): Record<string, unknown> {
  return {
    wasm_path: o.wasmPath,
    memory_size: o.memorySize ?? GUEST_MEMORY,
    vga_memory_size: 2 * 1024 * 1024,
    bios: { buffer: images.bios },
    vga_bios: { buffer: images.vgaBios },
    bzimage: { buffer: images.kernel },
    initrd: { buffer: images.initrd },
    cmdline: images.cmdline,
    hda: o.hda,
    autostart: o.autostart ?? true,
    disable_speaker: true,
    disable_keyboard: true,
    disable_mouse: true,
    ...(o.screenContainer ? { screen_container: o.screenContainer } : {}),
  };
}

/** Fetch the guest's files from `base` (a URL ending in `/`), for pages; a missing file is `not-found`. */
export async function fetchGuest(base: string): Promise<GuestImages> {
  const get = async (f: string) => {
    const r = await fetch(`${base}${f}`);
    if (!r.ok) throw new StrataError('not-found', `The guest file ${f} is not served (HTTP ${r.status}): build it with \`sudo bash .ci/build-guest.sh\` (build/guest/), then rebuild the page.`);
    return r.arrayBuffer();
  };
  const manifest = JSON.parse(new TextDecoder().decode(await get(GUEST_FILES.manifest))) as { cmdline: string };
  const [bios, vgaBios, kernel, initrd] = await Promise.all([get(GUEST_FILES.bios), get(GUEST_FILES.vgaBios), get(GUEST_FILES.kernel), get(GUEST_FILES.initrd)]);
  return { bios, vgaBios, kernel, initrd, cmdline: manifest.cmdline };
}
