/**
 * A guest's `sync` as a real barrier: the hook on v86's emulated IDE disk that makes the guest's
 * FLUSH CACHE (0xE7) / FLUSH CACHE EXT (0xEA) wait for the volume's durability barrier.
 *
 * v86 (checked against 0.5.462) answers both commands at once (status ready, completion
 * interrupt) without telling the disk, and its IDENTIFY data reports no write cache, so Linux
 * treats the disk as write-through and sends no flushes at all. The hook, for a disk registered
 * here:
 * - IDENTIFY DEVICE: sets "write cache supported" and "enabled" (bit 5 of words 82 and 85), so
 *   the guest sends a flush for `sync`, `fsync` and journal commits, as on a real disk;
 * - FLUSH CACHE (EXT): sets BSY, calls `disk.guestFlush()`, and only when that resolves sets the
 *   status ready and raises the interrupt (on failure: an aborted command, the guest sees EIO).
 * Every other command, and every other drive, goes to v86 unchanged.
 *
 * v86 seals its device objects, so the hook wraps `ata_command` on their shared prototype once
 * per page (inert for disks not registered). Before wrapping it checks, on a probe object of that
 * prototype (never on the running device), that v86 still behaves as checked: IDENTIFY has word
 * 83 valid with FLUSH CACHE supported, and a flush completes at once without touching the disk.
 * Anything else is `unsupported`, naming the v86 version.
 */
import { StrataError } from '../errors.js';

/** The v86 release this hook was checked against (its IDE code, src/ide.js). */
export const FLUSH_BARRIER_V86 = '0.5.462';

/** What the hook needs of a disk: `V86Disk` fits. */
export interface GuestFlushTarget {
  /** Make the guest's writes durable, then call `done` (with an error if they are not). */
  guestFlush(done: (error?: unknown) => void): void;
}

export interface FlushBarrierOptions {
  /** The installed v86's version (its package.json), named in errors. */
  v86Version?: string;
  /** Called when a guest flush failed (the guest's command is aborted). */
  onError?: (e: unknown) => void;
}

export interface FlushBarrier {
  /** False: flushes complete at once, as in plain v86 (the guest still sees a write cache). */
  enabled: boolean;
  /** Stop holding this disk's flushes (the prototype stays wrapped, inert for it). */
  remove(): void;
}

/** The fields and methods of v86's IDEInterface the hook uses. */
interface IdeDrive {
  buffer: unknown;
  is_atapi: boolean | undefined;
  drive_connected: boolean;
  status_reg: number;
  error_reg: number;
  current_command: number;
  data: Uint8Array;
  data_length: number;
  ata_command(cmd: number): void;
  push_irq(): void;
  ata_abort_command(): void;
}

const FLUSH_CACHE = 0xe7;
const FLUSH_CACHE_EXT = 0xea;
const IDENTIFY_DEVICE = 0xec;
const BSY = 0x80;
/** DRDY | DSC: what v86 reports for a completed non-data command */
const READY = 0x50;
/** IDENTIFY words 82 (supported) and 85 (enabled): bit 5, volatile write cache */
const WRITE_CACHE = 1 << 5;

interface Hooked {
  original: (this: IdeDrive, cmd: number) => void;
  disks: WeakMap<object, Registration>;
}

interface Registration {
  target: GuestFlushTarget;
  barrier: FlushBarrier;
  onError?: (e: unknown) => void;
}

/** On the prototype: shared by every copy of this module in the page. */
const HOOKED = Symbol.for('stratadisk.v86.flushBarrier');
/** The flush each drive waits for (a reset or a newer command makes an older one stale). */
const waiting = new WeakMap<IdeDrive, object>();

/**
 * Make `disk`'s guest flushes wait for the volume. Call it before the guest runs (right after
 * `new V86(...)`): it resolves on v86's `emulator-loaded` (before the first instruction), or at
 * once if the emulator is already loaded. Rejects with `unsupported` if v86 is not as checked.
 */
export function installFlushBarrier(emulator: unknown, disk: GuestFlushTarget & object, options: FlushBarrierOptions = {}): Promise<FlushBarrier> {
  const now = () => hook(emulator, disk, options);
  const emu = emulator as { add_listener?(e: string, f: () => void): void; remove_listener?(e: string, f: () => void): void } | undefined;
  if (ideOf(emulator) || typeof emu?.add_listener !== 'function') {
    try {
      return Promise.resolve(now());
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return new Promise((resolve, reject) => {
    const loaded = () => {
      emu.remove_listener?.('emulator-loaded', loaded);
      try {
        resolve(now());
      } catch (e) {
        reject(e);
      }
    };
    emu.add_listener!('emulator-loaded', loaded);
  });
}

function hook(emulator: unknown, disk: GuestFlushTarget & object, options: FlushBarrierOptions): FlushBarrier {
  const ide = ideOf(emulator);
  if (!ide) throw unsupported(options, 'the emulator has no IDE controller at v86.cpu.devices.ide');
  const drives = [ide.primary?.master, ide.primary?.slave, ide.secondary?.master, ide.secondary?.slave] as (IdeDrive | undefined)[];
  const drive = drives.find((d) => d !== undefined && d.buffer === disk);
  if (!drive) throw new StrataError('invalid-argument', 'This disk is not a hard disk of this emulator: pass the object given to V86 as hda or hdb.');
  const hooked = wrap(Object.getPrototypeOf(drive) as Record<PropertyKey, unknown>, drive, options);
  const reg: Registration = {
    target: disk,
    onError: options.onError,
    barrier: {
      enabled: true,
      remove: () => {
        if (hooked.disks.get(disk) === reg) hooked.disks.delete(disk);
      },
    },
  };
  hooked.disks.set(disk, reg);
  return reg.barrier;
}

function ideOf(emulator: unknown): { primary?: { master?: unknown; slave?: unknown }; secondary?: { master?: unknown; slave?: unknown } } | undefined {
  return (emulator as { v86?: { cpu?: { devices?: { ide?: never } } } } | undefined)?.v86?.cpu?.devices?.ide;
}

/** Wrap `ata_command` on the drives' prototype once, after checking v86 behaves as this hook expects. */
function wrap(proto: Record<PropertyKey, unknown>, drive: IdeDrive, options: FlushBarrierOptions): Hooked {
  if (Object.prototype.hasOwnProperty.call(proto, HOOKED)) return proto[HOOKED] as Hooked;
  for (const f of ['ata_command', 'push_irq', 'ata_abort_command', 'create_identify_packet', 'data_set']) {
    if (typeof proto[f] !== 'function') throw unsupported(options, `its IDE drive has no ${f}()`);
  }
  for (const [f, type] of [['status_reg', 'number'], ['error_reg', 'number'], ['current_command', 'number'], ['data_length', 'number'], ['drive_connected', 'boolean']] as const) {
    if (typeof (drive as unknown as Record<string, unknown>)[f] !== type) throw unsupported(options, `its IDE drive's ${f} is not a ${type}`);
  }
  if (!(drive.data instanceof Uint8Array)) throw unsupported(options, "its IDE drive's data is not a Uint8Array");
  const original = proto.ata_command as Hooked['original'];
  probe(proto, original, options);

  const hooked: Hooked = { original, disks: new WeakMap() };
  proto.ata_command = function ataCommand(this: IdeDrive, cmd: number): void {
    const reg = this.is_atapi ? undefined : hooked.disks.get(this.buffer as object);
    if (reg?.barrier.enabled && this.drive_connected && (cmd === FLUSH_CACHE || cmd === FLUSH_CACHE_EXT)) {
      holdFlush(this, cmd, reg);
      return;
    }
    original.call(this, cmd);
    if (reg && cmd === IDENTIFY_DEVICE && this.data_length === 512) {
      this.data[82 * 2] = this.data[82 * 2]! | WRITE_CACHE;
      this.data[85 * 2] = this.data[85 * 2]! | WRITE_CACHE;
    }
  };
  Object.defineProperty(proto, HOOKED, { value: hooked });
  return hooked;
}

/** BSY until the disk's flush resolves; then ready + interrupt, or an aborted command. */
function holdFlush(drive: IdeDrive, cmd: number, reg: Registration): void {
  drive.current_command = cmd;
  drive.error_reg = 0;
  drive.status_reg = BSY;
  const token = {};
  waiting.set(drive, token);
  reg.target.guestFlush((error) => {
    if (waiting.get(drive) !== token) return;
    waiting.delete(drive);
    // The guest reset the drive meanwhile (libata does after a timeout): this command is gone.
    if (drive.status_reg !== BSY || drive.current_command !== cmd) return;
    if (error === undefined) {
      drive.status_reg = READY;
      drive.push_irq();
    } else {
      reg.onError?.(error);
      drive.ata_abort_command();
    }
  });
}

/**
 * Run v86's own IDENTIFY and FLUSH CACHE on a probe object that inherits the drive's prototype
 * (own fields only, no device behind it): both must behave as the hook expects.
 */
function probe(proto: object, original: Hooked['original'], options: FlushBarrierOptions): void {
  const make = (cmd: number) => {
    const data = new Uint8Array(512);
    const p = Object.create(proto) as IdeDrive & Record<string, unknown>;
    let irqs = 0;
    let touched = false;
    const buffer = new Proxy({ byteLength: 16 * 63 * 16 * 512 }, { get: () => { touched = true; return undefined; } });
    Object.assign(p, {
      buffer, is_atapi: false, drive_connected: true, current_command: cmd, status_reg: READY, error_reg: 0,
      cylinder_count: 16, head_count: 16, sectors_per_track: 63, sector_count: 16 * 16 * 63,
      channel_nr: 0, interface_nr: 0, name: 'probe', sectors_per_drq: 128,
      data, data16: new Uint16Array(data.buffer), data32: new Int32Array(data.buffer), data_length: 0, data_end: 0, data_pointer: 0,
      features_reg: 0, sector_count_reg: 0, lba_low_reg: 0, lba_mid_reg: 0, lba_high_reg: 0, device_reg: 0,
      push_irq: () => void irqs++,
    });
    return { p, irqs: () => irqs, touched: () => touched };
  };
  try {
    const id = make(IDENTIFY_DEVICE);
    original.call(id.p, IDENTIFY_DEVICE);
    const word = (i: number) => id.p.data[2 * i]! | (id.p.data[2 * i + 1]! << 8);
    if (id.p.data_length !== 512 || id.irqs() !== 1) throw new Error('IDENTIFY DEVICE did not give 512 bytes and one interrupt');
    if ((word(83) & 0xc000) !== 0x4000 || !(word(83) & (1 << 12))) throw new Error(`IDENTIFY word 83 is ${word(83).toString(16)}, not "valid, FLUSH CACHE supported"`);
    if ((word(82) | word(85)) & WRITE_CACHE) throw new Error('IDENTIFY already reports a write cache');
    for (const cmd of [FLUSH_CACHE, FLUSH_CACHE_EXT]) {
      const f = make(cmd);
      original.call(f.p, cmd);
      if (f.p.status_reg !== READY || f.p.error_reg !== 0 || f.irqs() !== 1 || f.touched()) {
        throw new Error(`FLUSH CACHE ${cmd.toString(16)} no longer completes at once without the disk (status ${f.p.status_reg.toString(16)}, ${f.irqs()} interrupts${f.touched() ? ', the disk was asked' : ''})`);
      }
    }
  } catch (e) {
    throw unsupported(options, (e as Error).message ?? String(e));
  }
}

function unsupported(options: FlushBarrierOptions, what: string): StrataError {
  const version = options.v86Version ? `v86 ${options.v86Version}` : 'this v86 (version not given)';
  return new StrataError(
    'unsupported',
    `The guest flush barrier cannot hook ${version}: ${what}. It was checked against v86 ${FLUSH_BARRIER_V86}: install that version, or re-check src/v86/flush-barrier.ts against v86's src/ide.js and update it.`,
  );
}
