/**
 * A real guest (Debian kernel + busybox, built by .ci/build-guest.sh) under v86 in Node, its disk
 * a stratadisk volume in a directory: boot, write a file and sync, take a VM snapshot (disk +
 * machine state), change the file, revert, and read the snapshot's content back through the
 * guest's own shell; then reopen the volume and check what the guest wrote is there.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { V86 } from 'v86';
import { NodeDirNamespace } from '../../../src/store/node-dir.ts';
import { Volume } from '../../../src/volume/volume.ts';
import { V86Disk } from '../../../src/v86/disk-adapter.ts';
import { GUEST_READY, guestOptions } from '../../../src/v86/guest.ts';
import { guestMissing, loadGuest, v86WasmPath } from '../../../src/v86/guest-node.ts';
import { SerialConsole } from '../../../src/v86/serial-console.ts';
import { NamespaceStateStore } from '../../../src/v86/state-store.ts';
import { VmSnapshots, type V86Machine } from '../../../src/v86/vm-snapshots.ts';

const missing = guestMissing();
const long = process.env.STRATADISK_LONG === '1';

describe.skipIf(missing !== undefined)(`v86 guest on a stratadisk volume${missing ? ` (skipped: ${missing})` : ''}`, () => {
  it('boots, writes, snapshots with machine state, reverts, and reads the snapshot back in the guest', { timeout: 900_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'v86-vm-'));
    const images = await loadGuest();
    const ns = new NodeDirNamespace(dir, { create: true });
    const vol = await Volume.create(ns, { size: 128 * 2 ** 20 });
    const disk = new V86Disk(vol);
    const emu = new V86(guestOptions(images, { wasmPath: v86WasmPath(), hda: disk }) as never);
    const con = new SerialConsole(emu as never);
    const vm = new VmSnapshots(vol, disk, new NamespaceStateStore(ns), emu as unknown as V86Machine);
    try {
      await con.waitFor(GUEST_READY, 600_000);
      await con.waitFor('# ', 60_000);
      expect(await con.run('grep -c " /mnt " /proc/mounts')).toBe('1\n');

      await con.run('echo first-version > /mnt/hello.txt && sync');
      const snap = await vm.snapshot('written');
      expect(snap.machine).toBe(true);
      expect(snap.stateBytes).toBeGreaterThan(0);
      console.log(`v86 machine state of a 128 MiB guest: ${(snap.stateBytes / 2 ** 20).toFixed(1)} MiB stored (non-zero pages only)`);

      await con.run('echo second-version > /mnt/hello.txt && sync');
      expect(await con.run('cat /mnt/hello.txt')).toBe('second-version\n');
      await vm.snapshot('changed', { machine: false });

      expect(await vm.list()).toMatchObject([
        { name: 'written', machine: true },
        { name: 'changed', machine: false },
      ]);

      const r = await vm.revert('written');
      expect(r.resumed).toBe('state');
      // The guest continues from the instant of the snapshot: its page cache and disk agree.
      await new Promise((res) => setTimeout(res, 500));
      con.send('\n');
      expect(await con.run('cat /mnt/hello.txt')).toBe('first-version\n');
      // Drop the guest's caches: the bytes come from the reverted volume.
      expect(await con.run('sync; echo 3 > /proc/sys/vm/drop_caches; cat /mnt/hello.txt')).toBe('first-version\n');

      const st = disk.stats;
      // Batched I/O: the volume saw far fewer calls than the guest made.
      expect(st.volumeWrites).toBeLessThan(st.guestWrites);
      expect(st.volumeReads).toBeLessThan(st.guestReads);

      if (long) {
        // Disk-only revert of a running VM reboots it on the reverted disk.
        await con.run('echo third > /mnt/hello.txt && sync');
        con.clear();
        expect((await vm.revert('changed')).resumed).toBe('reboot');
        await con.waitFor(GUEST_READY, 600_000);
        await con.waitFor('# ', 60_000);
        expect(await con.run('cat /mnt/hello.txt')).toBe('second-version\n');
      }
    } finally {
      await emu.stop();
      await disk.close();
      await emu.destroy();
      await vol.close();
    }
    // The disk outlives the emulator: reopen and find the file system the guest made.
    const again = await Volume.open(new NodeDirNamespace(dir), { readOnly: true });
    const sb = await again.read(1024, 1024); // ext2 superblock
    expect(sb[56] | (sb[57]! << 8)).toBe(0xef53);
    expect(again.snapshots().map((s) => s.name)).toEqual(['written', 'changed']);
    await again.close();
    await rm(dir, { recursive: true, force: true });
  });
});
