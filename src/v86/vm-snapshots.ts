/**
 * Snapshots of a v86 virtual machine whose disk is a stratadisk volume.
 *
 * A VM snapshot is a volume snapshot (O(1)) plus, when taken of a running machine, v86's
 * machine state (`save_state()`: RAM, CPU, devices) kept by name in a MachineStateStore. Revert
 * brings back both: the volume is reverted, the adapter's caches are dropped, and the state is
 * restored, so the guest continues from the instant of the snapshot with the disk it had then.
 * A disk-only snapshot reverts the disk and reboots the machine (or, stopped, leaves it to boot).
 *
 * Order of a snapshot: stop the CPU, wait until every guest read is answered (so no device is
 * left waiting for a callback), save the machine state, write the guest's buffered writes to the
 * volume and make them durable, snapshot the volume, then store the state. A crash between the
 * last two steps leaves a disk-only snapshot, never a state without its disk.
 *
 * When the disk keeps a write log (journal mode), each snapshot also marks the log `vm:NAME`
 * while the CPU is still stopped (after the volume snapshot, the same flushed instant), so the
 * disk can be restored to it (`restore DIR mark:vm:NAME`) or viewed there. A mark that fails
 * undoes the snapshot (the log failing stops the volume's writes anyway).
 */
import { StrataError } from '../errors.js';
import { vmMarkLabel } from '../journal/auto-marks.js';
import type { SnapshotInfo } from '../volume/volume.js';
import type { DiskVolume, V86Disk } from './disk-adapter.js';
import { decodeState, encodeState } from './state-file.js';
import type { MachineStateStore } from './state-store.js';

/** The parts of a v86 `V86` instance used here. */
export interface V86Machine {
  is_running(): boolean;
  stop(): Promise<void> | void;
  run(): Promise<void> | void;
  restart(): void;
  save_state(): Promise<ArrayBuffer>;
  restore_state(state: ArrayBuffer): Promise<void>;
}

/** What VM snapshots need of a volume: `Volume` and `RemoteVolume` both fit. */
export interface SnapshotVolume extends DiskVolume {
  snapshot(name: string): Promise<SnapshotInfo>;
  snapshots(): SnapshotInfo[] | Promise<SnapshotInfo[]>;
  revert(name: string): Promise<void>;
  deleteSnapshot(name: string): Promise<void>;
  /** The volume's write log, when it can have one (RemoteVolume.journal): marked when status() is not null. */
  readonly journal?: { status(): Promise<unknown>; mark(label: string): Promise<unknown> };
}

/** A write log to mark at each snapshot: a Journal (openJournaled) or RemoteVolume.journal. */
export interface SnapshotMarker {
  mark(label: string): Promise<unknown>;
}

export interface VmSnapshotsOptions {
  /**
   * The disk's write log, marked `vm:NAME` at each snapshot. Default: the volume's own
   * `journal` (RemoteVolume) when it keeps a log; pass the Journal from openJournaled() for an
   * in-process Volume, or null never to mark.
   */
  journal?: SnapshotMarker | null;
}

export interface VmSnapshotInfo {
  name: string;
  created: string;
  /** True when the snapshot holds the machine state too (revert resumes the running guest). */
  machine: boolean;
  /** Bytes of the stored (compressed) machine state, 0 for disk-only snapshots. */
  stateBytes: number;
}

export interface VmSnapshotOptions {
  /** Keep the machine state too (default: true when an emulator is attached and has been started). */
  machine?: boolean;
}

export interface VmRevertResult {
  /** `state`: the guest continues from the snapshot's instant; `reboot`: the machine was reset; `disk`: the VM was stopped and stays so. */
  resumed: 'state' | 'reboot' | 'disk';
}

export class VmSnapshots {
  private emulator: V86Machine | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  private readonly journal: SnapshotMarker | null | undefined;

  constructor(
    readonly volume: SnapshotVolume,
    readonly disk: V86Disk,
    readonly states: MachineStateStore,
    emulator?: V86Machine,
    options: VmSnapshotsOptions = {},
  ) {
    this.emulator = emulator;
    this.journal = options.journal;
  }

  /** The log to mark, if the disk keeps one. */
  private async marker(): Promise<SnapshotMarker | null> {
    if (this.journal !== undefined) return this.journal;
    const own = this.volume.journal;
    return own && (await own.status()) !== null ? own : null;
  }

  /** Attach (or replace) the emulator whose state is saved and restored. */
  attach(emulator: V86Machine | undefined): void {
    this.emulator = emulator;
  }

  /** Take snapshot `name`: the disk, and the machine state unless `machine: false` or no emulator. */
  snapshot(name: string, options: VmSnapshotOptions = {}): Promise<VmSnapshotInfo> {
    return this.serial(async () => {
      const emu = this.emulator;
      const machine = options.machine ?? emu !== undefined;
      if (machine && !emu) throw new StrataError('invalid-argument', 'A machine snapshot needs a running emulator: attach one, or pass { machine: false } for a disk-only snapshot.');
      const wasRunning = emu?.is_running() ?? false;
      let state: Uint8Array | undefined;
      try {
        if (emu && wasRunning) await emu.stop();
        await this.disk.settle();
        if (machine && emu) state = await encodeState(await emu.save_state());
        await this.disk.flush();
        const marker = await this.marker();
        const info = await this.volume.snapshot(name);
        if (marker) {
          try {
            await marker.mark(vmMarkLabel(name));
          } catch (e) {
            await this.volume.deleteSnapshot(name).catch(() => {});
            throw e;
          }
        }
        if (state) await this.states.put(name, state);
        return { name, created: info.created, machine: state !== undefined, stateBytes: state?.length ?? 0 };
      } finally {
        if (emu && wasRunning) await emu.run();
      }
    });
  }

  /**
   * Go back to snapshot `name`. With a machine state: the disk and the running guest both return
   * to that instant. Disk-only: the disk returns, and a running machine is rebooted on it.
   */
  revert(name: string): Promise<VmRevertResult> {
    return this.serial(async () => {
      const emu = this.emulator;
      const bytes = await this.states.get(name);
      // Decode before touching anything: a damaged state must not leave a half-reverted VM.
      const state = bytes && emu ? await decodeState(bytes, `of snapshot "${name}"`) : undefined;
      const wasRunning = emu?.is_running() ?? false;
      if (emu && wasRunning) await emu.stop();
      await this.disk.settle();
      // What the guest wrote since goes into the layer that revert throws away.
      await this.disk.flush();
      await this.volume.revert(name);
      this.disk.invalidate();
      await this.disk.prime();
      if (emu && state) {
        await emu.restore_state(state);
        await emu.run();
        return { resumed: 'state' };
      }
      if (emu && wasRunning) {
        emu.restart();
        await emu.run();
        return { resumed: 'reboot' };
      }
      return { resumed: 'disk' };
    });
  }

  /** Every snapshot of the volume, with whether it holds a machine state. */
  async list(): Promise<VmSnapshotInfo[]> {
    const [snaps, withState] = await Promise.all([this.volume.snapshots(), this.states.list()]);
    const bytes = new Map(withState.map((s) => [s.name, s.bytes]));
    return snaps.map((s) => ({ name: s.name, created: s.created, machine: bytes.has(s.name), stateBytes: bytes.get(s.name) ?? 0 }));
  }

  /** Delete snapshot `name` and its machine state. */
  delete(name: string): Promise<void> {
    return this.serial(async () => {
      await this.volume.deleteSnapshot(name);
      await this.states.delete(name);
    });
  }

  /** One operation at a time: a revert must not interleave with a snapshot. */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.busy.then(op, op);
    this.busy = run.catch(() => {});
    return run;
  }
}
