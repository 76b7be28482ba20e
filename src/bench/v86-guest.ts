/**
 * What the v86 benchmarks measure inside the guest, the same on every disk and platform: time
 * from power-on to the shell (the first boot formats the disk), then `dd` of 64 MiB into a file
 * on the guest's ext2 with `conv=fsync`, and back after dropping the guest's page cache.
 * The data is `yes` output (not zeros: a volume stores zero blocks as metadata only).
 */
import { GUEST_READY } from '../v86/guest.js';
import { SerialConsole, type V86Serial } from '../v86/serial-console.js';

export interface GuestFigures {
  bootMs: number;
  writeMBs: number;
  readMBs: number;
}

export interface GuestEmulator extends V86Serial {
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/** Boot `emulator` (already created with autostart), run the dd pair, tear it down. */
export async function measureGuest(emulator: GuestEmulator, mib = 64, timeoutMs = 1_200_000): Promise<GuestFigures> {
  const t0 = performance.now();
  const con = new SerialConsole(emulator);
  try {
    await con.waitFor(GUEST_READY, timeoutMs);
    await con.waitFor('# ', 60_000);
    const bootMs = performance.now() - t0;
    const bytes = mib * 2 ** 20;
    let t = performance.now();
    await con.run(`yes 0123456789abcdef | head -c ${bytes} | dd of=/mnt/bench bs=1M conv=fsync 2>/dev/null`, timeoutMs);
    const writeMs = performance.now() - t;
    await con.run('sync; echo 3 > /proc/sys/vm/drop_caches', timeoutMs);
    t = performance.now();
    const size = await con.run('dd if=/mnt/bench of=/dev/null bs=1M 2>/dev/null; wc -c < /mnt/bench', timeoutMs);
    const readMs = performance.now() - t;
    if (Number(size.trim()) !== bytes) throw new Error(`the guest wrote ${size.trim()} bytes, expected ${bytes}`);
    await con.run('rm /mnt/bench; sync', timeoutMs);
    return { bootMs, writeMBs: bytes / 1e6 / (writeMs / 1000), readMBs: bytes / 1e6 / (readMs / 1000) };
  } finally {
    con.detach();
    await emulator.stop();
    await emulator.destroy();
  }
}
