/**
 * What kind of image file is this? Recognises disk image containers (and compressed files and
 * archives that often hold one) by their content: a magic at the start, a signature at a fixed
 * offset, or a footer at the end, never by the file name. Anything not recognised is `raw`.
 *
 * The import uses it so that no container is stored as if its bytes were the disk: a VMDK, VHD,
 * VHDX, VDI, QED, ... imported as raw would give a volume holding the container's headers and
 * tables, which no guest can use. Only the first {@link HEAD_BYTES} and the last
 * {@link TAIL_BYTES} bytes are looked at, so detection costs two small reads whatever the size.
 *
 * An ISO 9660 image is deliberately `raw`: its bytes are the medium itself, as a disk's are.
 */
import type { Store } from '../store/store.js';

export type ContainerFormat =
  | 'qcow2'
  | 'qcow'
  | 'vmdk'
  | 'vhd'
  | 'vhdx'
  | 'vdi'
  | 'qed'
  | 'parallels'
  | 'bochs'
  | 'cloop'
  | 'dmg'
  | 'luks'
  | 'gzip'
  | 'xz'
  | 'zstd'
  | 'bzip2'
  | 'tar';

export interface DetectedFormat {
  format: 'raw' | ContainerFormat;
  /** what it is, for messages: "a VMDK image (sparse extent)" */
  what: string;
}

/** Bytes read from the start of a file for detection. */
export const HEAD_BYTES = 4096;
/** Bytes read from the end of a file for detection (VHD and DMG footers). */
export const TAIL_BYTES = 512;

const RAW: DetectedFormat = { format: 'raw', what: 'a raw image' };

/** qemu-img's `-f` name of each container it can read. */
const QEMU_NAME: Partial<Record<ContainerFormat, string>> = {
  qcow2: 'qcow2',
  qcow: 'qcow',
  vmdk: 'vmdk',
  vhd: 'vpc',
  vhdx: 'vhdx',
  vdi: 'vdi',
  qed: 'qed',
  parallels: 'parallels',
  bochs: 'bochs',
  cloop: 'cloop',
  dmg: 'dmg',
};

const UNPACK: Partial<Record<ContainerFormat, string>> = {
  gzip: 'gzip -dk',
  xz: 'xz -dk',
  zstd: 'zstd -d',
  bzip2: 'bzip2 -dk',
};

/**
 * The format of a file from its first bytes (`head`, up to HEAD_BYTES), its last bytes (`tail`,
 * up to TAIL_BYTES, ending at the end of the file) and its size. Never throws: short or odd
 * input is simply not recognised.
 */
export function detectFormat(head: Uint8Array, tail: Uint8Array, size: number): DetectedFormat {
  const at = (bytes: Uint8Array, offset: number, text: string): boolean => {
    if (offset < 0 || offset + text.length > bytes.length) return false;
    for (let i = 0; i < text.length; i++) if (bytes[offset + i] !== text.charCodeAt(i)) return false;
    return true;
  };
  const u32be = (offset: number): number => (head.length >= offset + 4 ? ((head[offset]! << 24) | (head[offset + 1]! << 16) | (head[offset + 2]! << 8) | head[offset + 3]!) >>> 0 : -1);

  if (at(head, 0, 'QFI\xfb')) {
    const version = u32be(4);
    return version === 1 ? { format: 'qcow', what: 'a qcow (version 1) image' } : { format: 'qcow2', what: 'a qcow2 image' };
  }
  if (at(head, 0, 'KDMV')) {
    // SparseExtentHeader.compressAlgorithm (u16 LE at 77): 1 = deflate, as in stream-optimized files.
    const streamOptimized = head.length >= 79 && head[77] === 1 && head[78] === 0;
    return { format: 'vmdk', what: `a VMDK image (${streamOptimized ? 'stream-optimized' : 'sparse extent'})` };
  }
  if (at(head, 0, 'COWD')) return { format: 'vmdk', what: 'a VMDK image (ESX sparse extent)' };
  if (isVmdkDescriptor(head)) return { format: 'vmdk', what: 'a VMDK descriptor (a text file naming the extent files that hold the disk)' };
  if (at(head, 0, 'vhdxfile')) return { format: 'vhdx', what: 'a VHDX image' };
  if (at(head, 0, 'conectix')) return { format: 'vhd', what: `a VHD image (${vhdType(head, 0)})` };
  // A fixed VHD is the disk followed by a 512-byte footer (511 bytes in very old files).
  if (size >= TAIL_BYTES && tail.length === TAIL_BYTES) {
    if (at(tail, 0, 'conectix')) return { format: 'vhd', what: `a VHD image (${vhdType(tail, 0)})` };
    if (at(tail, 1, 'conectix')) return { format: 'vhd', what: `a VHD image (${vhdType(tail, 1)})` };
  }
  // VDI: the signature 0xbeda107f (u32 LE) at 0x40, after a "<<< ... >>>" text line.
  if (head.length >= 0x44 && head[0x40] === 0x7f && head[0x41] === 0x10 && head[0x42] === 0xda && head[0x43] === 0xbe) return { format: 'vdi', what: 'a VDI (VirtualBox) image' };
  if (at(head, 0, '<<< ') && /^<<< [\x20-\x7e]{0,56}Disk Image >>>/.test(latin1(head, 0, 64))) return { format: 'vdi', what: 'a VDI (VirtualBox) image' };
  if (at(head, 0, 'QED\0')) return { format: 'qed', what: 'a QED image' };
  if (at(head, 0, 'WithoutFreeSpace') || at(head, 0, 'WithouFreSpacExt')) return { format: 'parallels', what: 'a Parallels image' };
  if (at(head, 0, 'Bochs Virtual HD Image')) return { format: 'bochs', what: 'a Bochs image' };
  if (at(head, 0, '#!/bin/sh\n#V2.0 Format\n')) return { format: 'cloop', what: 'a cloop (compressed loopback) image' };
  if (at(head, 0, 'LUKS\xba\xbe')) return { format: 'luks', what: 'a LUKS-encrypted image' };
  // gzip: magic, deflate, no reserved flag bits.
  if (head.length >= 4 && head[0] === 0x1f && head[1] === 0x8b && head[2] === 8 && (head[3]! & 0xe0) === 0) return { format: 'gzip', what: 'a gzip-compressed file' };
  if (at(head, 0, '\xfd7zXZ\0')) return { format: 'xz', what: 'an xz-compressed file' };
  if (at(head, 0, '\x28\xb5\x2f\xfd')) return { format: 'zstd', what: 'a zstd-compressed file' };
  if (at(head, 0, 'BZh') && head.length >= 10 && head[3]! >= 0x31 && head[3]! <= 0x39 && at(head, 4, '\x31\x41\x59\x26\x53\x59')) return { format: 'bzip2', what: 'a bzip2-compressed file' };
  if (at(head, 257, 'ustar')) return { format: 'tar', what: 'a tar archive (an OVA appliance is one)' };
  if (size >= TAIL_BYTES && tail.length === TAIL_BYTES && at(tail, 0, 'koly')) return { format: 'dmg', what: 'a DMG (Apple disk image)' };
  return RAW;
}

/** Reads the start and end of `store` and detects its format. */
export async function detectStore(store: Store): Promise<DetectedFormat> {
  const size = store.size;
  const head = await store.read(0, Math.min(size, HEAD_BYTES));
  const tail = size >= TAIL_BYTES ? await store.read(size - TAIL_BYTES, TAIL_BYTES) : new Uint8Array(0);
  return detectFormat(head, tail, size);
}

/**
 * How to turn a recognised container into something stratadisk imports, as a sentence (for
 * `file` at the path the user gave). Empty for raw and qcow2.
 */
export function conversionHint(file: string, d: DetectedFormat): string {
  if (d.format === 'raw' || d.format === 'qcow2') return '';
  const q = shellQuote(file);
  const stem = shellQuote(file.replace(/\.[A-Za-z0-9]{1,5}$/, '') + '.qcow2');
  const qemu = QEMU_NAME[d.format];
  if (qemu) return `Convert it first, e.g. \`qemu-img convert -f ${qemu} -O qcow2 ${q} ${stem}\` (or \`-O raw\`), and import that.`;
  const unpack = UNPACK[d.format];
  if (unpack) return `Decompress it first (\`${unpack} ${q}\`) and import the result.`;
  if (d.format === 'tar') return `Extract it first (\`tar -xf ${q}\`) and import the disk image inside (converting it if it is a VMDK).`;
  // luks
  return `To store the unlocked disk, convert it first: \`qemu-img convert --object secret,id=k,file=KEYFILE --image-opts driver=luks,key-secret=k,file.filename=${q} -O qcow2 ${stem}\`.`;
}

/** The VHD disk type from a footer at `offset` (u32 BE at +60). */
function vhdType(bytes: Uint8Array, offset: number): string {
  const p = offset + 60;
  if (bytes.length < p + 4) return 'footer cut short';
  const t = ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0;
  return t === 2 ? 'fixed' : t === 3 ? 'dynamic' : t === 4 ? 'differencing' : `disk type ${t}`;
}

/**
 * A VMDK descriptor file: text that starts "# Disk DescriptorFile", or (qemu's rule) whose first
 * line that is neither a comment nor blank-led is `version=1`, `2` or `3`.
 */
function isVmdkDescriptor(head: Uint8Array): boolean {
  const text = latin1(head, 0, head.length);
  if (text.startsWith('# Disk DescriptorFile')) return true;
  let p = 0;
  while (p < text.length) {
    const c = text[p];
    if (c === '#') {
      const nl = text.indexOf('\n', p);
      if (nl < 0) return false;
      p = nl + 1;
    } else if (c === ' ') {
      p++;
    } else {
      return /^version=[123]\r?\n/.test(text.slice(p, p + 11));
    }
  }
  return false;
}

function latin1(bytes: Uint8Array, from: number, to: number): string {
  let s = '';
  const end = Math.min(to, bytes.length);
  for (let i = from; i < end; i++) s += String.fromCharCode(bytes[i]!);
  return s;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:+@%=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
