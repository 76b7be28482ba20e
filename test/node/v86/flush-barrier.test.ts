/**
 * The guest flush barrier (src/v86/flush-barrier.ts) on the real v86: the IDE drive's FLUSH
 * CACHE stays busy, without an interrupt, until the volume's flush resolved; IDENTIFY reports a
 * write cache; a v86 that behaves differently is refused by name. Then a real guest (built by
 * .ci/build-guest.sh): after `sync` returns, what it wrote is in the volume's durable state (a
 * model of what a crash keeps); with the barrier off, the same `sync` leaves it volatile.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { V86 } from 'v86';
import { MemoryNamespace } from '../../../src/store/memory.ts';
import { Volume } from '../../../src/volume/volume.ts';
import { V86Disk, type DiskVolume } from '../../../src/v86/disk-adapter.ts';
import { FLUSH_BARRIER_V86, installFlushBarrier } from '../../../src/v86/flush-barrier.ts';
import { GUEST_READY, guestOptions } from '../../../src/v86/guest.ts';
import { guestMissing, loadGuest, v86Version, v86WasmPath } from '../../../src/v86/guest-node.ts';
import { SerialConsole } from '../../../src/v86/serial-console.ts';

const missing = guestMissing();
const MiB = 1 << 20;

/**
 * A volume that models a crash: `durable` holds what a power loss would keep (writes made
 * durable by a resolved flush); `flush` can be held open by the test.
 */
function durableModel(v: DiskVolume) {
  const durable = new Uint8Array(v.size);
  let volatile: { offset: number; data: Uint8Array }[] = [];
  let gate: Promise<void> | undefined;
  let failNext: Error | undefined;
  const model = {
    size: v.size,
    blockSize: v.blockSize,
    durable,
    flushes: 0,
    /** resolves when the next flush is called; it then waits for `release` */
    hold(): { called: Promise<void>; release(): void } {
      let release!: () => void;
      let called!: () => void;
      const wasCalled = new Promise<void>((r) => (called = r));
      gate = new Promise<void>((r) => (release = r));
      model.onFlush = called;
      return { called: wasCalled, release };
    },
    failNextFlush(e: Error) {
      failNext = e;
    },
    onFlush: undefined as (() => void) | undefined,
    read: (o: number, n: number) => v.read(o, n),
    async write(o: number, d: Uint8Array) {
      volatile.push({ offset: o, data: d.slice() });
      await v.write(o, d);
    },
    async flush() {
      model.flushes++;
      const covered = volatile;
      volatile = [];
      model.onFlush?.();
      model.onFlush = undefined;
      if (gate) {
        const g = gate;
        gate = undefined;
        await g;
      }
      if (failNext) {
        const e = failNext;
        failNext = undefined;
        volatile = [...covered, ...volatile];
        throw e;
      }
      await v.flush();
      for (const w of covered) durable.set(w.data, w.offset);
    },
  };
  return model;
}

interface Drive {
  status_reg: number;
  error_reg: number;
  data: Uint8Array;
  channel: { dma_status: number; device_control_reg: number };
  ata_command(cmd: number): void;
  device_reset(): void;
}

describe('the guest flush barrier', () => {
  it('was checked against the installed v86 (a new v86 needs flush-barrier.ts re-checked)', () => {
    const installed = (createRequire(import.meta.url)('v86/package.json') as { version: string }).version;
    expect(installed.split('+')[0], `v86 ${installed} is installed; re-check src/v86/flush-barrier.ts against its src/ide.js and set FLUSH_BARRIER_V86`).toBe(FLUSH_BARRIER_V86);
    expect(v86Version()).toBe(installed);
    // The pin in package.json allows newer 0.5.x: the lock file keeps the checked one.
    const lock = JSON.parse(readFileSync(new URL('../../../package-lock.json', import.meta.url), 'utf8')) as { packages: Record<string, { version: string }> };
    expect(lock.packages['node_modules/v86']!.version).toBe(FLUSH_BARRIER_V86);
  });

  it('refuses, naming the version, a v86 whose IDE drive answers differently', async () => {
    // Stand-ins for a changed v86: one that asks the disk on a flush, one without IDENTIFY.
    class AsksDisk {
      buffer: unknown;
      is_atapi = false;
      drive_connected = true;
      status_reg = 0x50;
      error_reg = 0;
      current_command = -1;
      data = new Uint8Array(512);
      data_length = 0;
      constructor(buffer: unknown) {
        this.buffer = buffer;
      }
      ata_command(cmd: number): void {
        this.current_command = cmd;
        if (cmd === 0xec) {
          this.data.fill(0);
          this.data[166] = 0x00;
          this.data[167] = 0x50; // word 83: valid, FLUSH CACHE supported
          this.data_length = 512;
          this.push_irq();
        } else if (cmd === 0xe7 || cmd === 0xea) {
          (this.buffer as { flush?: () => void }).flush?.();
          this.status_reg = 0x50;
          this.push_irq();
        }
      }
      push_irq(): void {}
      ata_abort_command(): void {}
      create_identify_packet(): void {}
      data_set(): void {}
    }
    class NoIdentify extends AsksDisk {}
    (NoIdentify.prototype as unknown as Record<string, unknown>).create_identify_packet = undefined;
    const emu = (drive: object) => ({ v86: { cpu: { devices: { ide: { primary: { master: drive } } } } } });
    const disk = { guestFlush: () => {} };
    const asks = new AsksDisk(disk);
    await expect(installFlushBarrier(emu(asks), disk, { v86Version: '9.9.9' })).rejects.toMatchObject({
      code: 'unsupported',
      message: expect.stringMatching(/v86 9\.9\.9.*FLUSH CACHE e7 no longer completes at once.*checked against v86 0\.5\.462/),
    });
    await expect(installFlushBarrier(emu(new NoIdentify(disk)), disk)).rejects.toMatchObject({ code: 'unsupported', message: expect.stringMatching(/version not given.*create_identify_packet/) });
    // Not refused, and nothing wrapped: the stand-in is untouched.
    expect(Object.getOwnPropertySymbols(AsksDisk.prototype)).toEqual([]);
    await expect(installFlushBarrier(emu(asks), { guestFlush: () => {} })).rejects.toMatchObject({ code: 'invalid-argument' });
  });

  it.skipIf(missing !== undefined)('holds FLUSH CACHE busy, with no interrupt, until the volume flush resolved', { timeout: 120_000 }, async () => {
    const images = await loadGuest();
    const vol = await Volume.create(new MemoryNamespace(), { size: 16 * MiB });
    const model = durableModel(vol);
    const errors: unknown[] = [];
    const disk = new V86Disk(model, { flushIntervalMs: Infinity });
    const emu = new V86(guestOptions(images, { wasmPath: v86WasmPath(), hda: disk, autostart: false }) as never) as unknown as {
      v86: { cpu: { devices: { ide: { primary: { master: Drive } } } } };
      destroy(): Promise<void>;
    };
    const barrier = await installFlushBarrier(emu, disk, { v86Version: v86Version(), onError: (e) => errors.push(e) });
    const drive = emu.v86.cpu.devices.ide.primary.master;
    try {
      // IDENTIFY: write cache supported and enabled (words 82, 85 bit 5), FLUSH (EXT) as before.
      drive.ata_command(0xec);
      const word = (i: number) => drive.data[2 * i]! | (drive.data[2 * i + 1]! << 8);
      expect(word(82) & 0x20).toBe(0x20);
      expect(word(85) & 0x20).toBe(0x20);
      expect(word(83) & 0xf000).toBe(0x7000);

      // As the BIOS leaves it: interrupts enabled (nIEN clear); bit 2 of the bus master status is the interrupt.
      drive.channel.device_control_reg = 0;
      const irq = () => (drive.channel.dma_status & 4) !== 0;
      const sector = new Uint8Array(512).fill(0x5a);
      for (const cmd of [0xe7, 0xea]) {
        disk.set(cmd === 0xe7 ? 8192 : 8704, sector, () => {});
        drive.channel.dma_status &= ~4;
        const held = model.hold();
        drive.ata_command(cmd);
        expect(drive.status_reg).toBe(0x80); // BSY
        await held.called;
        // The volume's flush runs; the guest still sees BSY and no interrupt.
        expect(drive.status_reg).toBe(0x80);
        expect(irq()).toBe(false);
        held.release();
        await disk.settle();
        expect(drive.status_reg).toBe(0x50);
        expect(drive.error_reg).toBe(0);
        expect(irq()).toBe(true);
      }
      expect(model.durable.subarray(8192, 9216)).toEqual(new Uint8Array(1024).fill(0x5a));
      expect(disk.stats.guestFlushes).toBe(2);

      // A failed volume flush aborts the command (the guest sees an I/O error) and is reported.
      disk.set(16384, sector, () => {});
      model.failNextFlush(new Error('flush failed'));
      drive.ata_command(0xe7);
      await disk.settle();
      expect(drive.status_reg & 0x01).toBe(0x01); // ERR
      expect(drive.error_reg).toBe(0x04); // ABRT
      expect(errors.length).toBeGreaterThan(0);
      // The next flush tries again and makes the data durable.
      drive.ata_command(0xe7);
      await disk.settle();
      expect(drive.status_reg).toBe(0x50);
      expect(model.durable.subarray(16384, 16896)).toEqual(sector);

      // A reset while a flush is held: the late completion does not overwrite the reset's status.
      disk.set(24576, sector, () => {});
      const held = model.hold();
      drive.ata_command(0xe7);
      await held.called;
      drive.device_reset();
      const afterReset = drive.status_reg;
      held.release();
      await disk.settle();
      expect(drive.status_reg).toBe(afterReset);

      // Off: v86's own behaviour, done at once and the volume is not asked.
      barrier.enabled = false;
      const before = model.flushes;
      drive.ata_command(0xe7);
      expect(drive.status_reg).toBe(0x50);
      await disk.settle();
      expect(model.flushes).toBe(before);
    } finally {
      await emu.destroy();
      await disk.close();
      await vol.close();
    }
  });

  it.skipIf(missing !== undefined)('a real guest: after `sync` returns its writes are durable; with the barrier off they are not', { timeout: 1_200_000 }, async () => {
    const images = await loadGuest();
    const vol = await Volume.create(new MemoryNamespace(), { size: 128 * MiB });
    const model = durableModel(vol);
    // No timer: only a flush makes data durable; what is written stays far below flushBytes.
    const disk = new V86Disk(model, { flushIntervalMs: Infinity });
    const emu = new V86(guestOptions(images, { wasmPath: v86WasmPath(), hda: disk }) as never) as unknown as { stop(): Promise<void>; destroy(): Promise<void> };
    const barrier = await installFlushBarrier(emu, disk, { v86Version: v86Version() });
    const con = new SerialConsole(emu as never);
    const has = (text: string) => Buffer.from(model.durable.buffer).indexOf(text) >= 0;
    try {
      await con.waitFor(GUEST_READY, 900_000);
      await con.waitFor('# ', 60_000);
      // Linux sees the write cache, so sync and fsync send FLUSH CACHE.
      expect(await con.run('cat /sys/block/sda/queue/write_cache')).toBe('write back\n');

      const id = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
      const on = `barrier-on-${id}`;
      const flushes = disk.stats.guestFlushes;
      // The marker is assembled by the shell, so the command line itself never holds it.
      await con.run(`yes ${on.slice(0, 5)}''${on.slice(5)} | head -c 100000 > /mnt/on.txt; sync`);
      expect(has(on), 'the data synced with the barrier on is durable').toBe(true);
      expect(disk.stats.guestFlushes).toBeGreaterThan(flushes);

      barrier.enabled = false;
      const off = `barrier-off-${id}`;
      await con.run(`yes ${off.slice(0, 5)}''${off.slice(5)} | head -c 100000 > /mnt/off.txt; sync`);
      expect(await con.run('wc -c < /mnt/off.txt')).toBe('100000\n');
      expect(has(off), 'without the barrier, sync returned with the data still volatile').toBe(false);
    } finally {
      con.detach();
      await emu.stop();
      await emu.destroy();
      await disk.close();
      await vol.close();
    }
  });
});
