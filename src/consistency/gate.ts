/**
 * The write gate of a participant: writes (or whole application transactions) pass through it;
 * while the participant is frozen, new ones are held — not failed — and released at thaw.
 * `freeze()` resolves once every unit that was already inside has finished, so the freeze lands
 * on transaction boundaries: a transfer that writes a record on two volumes is either wholly
 * before the snapshot or wholly after it.
 */
import { StrataError } from '../errors.js';

export class WriteGate {
  private active = 0;
  private frozen = false;
  private held: (() => void)[] = [];
  private drained: (() => void)[] = [];

  /** True between `freeze()` and `thaw()`. */
  get isFrozen(): boolean {
    return this.frozen;
  }

  /** Units currently inside the gate. */
  get inFlight(): number {
    return this.active;
  }

  /** Units waiting for the thaw. */
  get waiting(): number {
    return this.held.length;
  }

  /**
   * Run `fn` inside the gate: waits while frozen, then runs it. Do not call `run` (or a
   * {@link FreezableVolume} method) from inside `fn`: a freeze that started meanwhile would wait
   * for `fn` while the inner call waits for the thaw. Inside, use the volumes directly.
   */
  async run<T>(fn: () => Promise<T> | T): Promise<T> {
    while (this.frozen) await new Promise<void>((r) => this.held.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      if (--this.active === 0 && this.drained.length > 0) {
        const d = this.drained;
        this.drained = [];
        for (const r of d) r();
      }
    }
  }

  /** Hold new units; resolves when the ones inside have finished. */
  freeze(): Promise<void> {
    this.frozen = true;
    if (this.active === 0) return Promise.resolve();
    return new Promise<void>((r) => this.drained.push(r));
  }

  /** Let held units run (in the order they arrived). */
  thaw(): void {
    this.frozen = false;
    const h = this.held;
    this.held = [];
    for (const r of h) r();
  }
}

/** The part of a volume a writer uses: {@link Volume}, a RemoteVolume, a group member's volume. */
export interface WritableVolume {
  readonly size: number;
  readonly blockSize: number;
  read(offset: number, length: number): Promise<Uint8Array>;
  write(offset: number, data: Uint8Array): Promise<void>;
  writeZeroes(offset: number, length: number): Promise<void>;
  flush(): Promise<void>;
}

/**
 * A volume whose writes go through a participant's gate: while the participant is frozen they
 * wait, and run at thaw in the order they were issued. Reads are never held.
 */
export class FreezableVolume implements WritableVolume {
  constructor(
    readonly volume: WritableVolume,
    readonly gate: WriteGate,
  ) {
    if (!volume || !gate) throw new StrataError('invalid-argument', 'FreezableVolume needs a volume and the gate of its participant.');
  }

  get size(): number {
    return this.volume.size;
  }
  get blockSize(): number {
    return this.volume.blockSize;
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    return this.volume.read(offset, length);
  }
  write(offset: number, data: Uint8Array): Promise<void> {
    return this.gate.run(() => this.volume.write(offset, data));
  }
  writeZeroes(offset: number, length: number): Promise<void> {
    return this.gate.run(() => this.volume.writeZeroes(offset, length));
  }
  flush(): Promise<void> {
    return this.gate.run(() => this.volume.flush());
  }
}
