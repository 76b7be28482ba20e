/**
 * What the v86 benchmarks measure inside the guest, the same on every disk and platform: time
 * from power-on to the shell (the first boot formats the disk), then `dd` of 64 MiB into a file
 * on the guest's ext2 with `conv=fsync`, and back after dropping the guest's page cache.
 * The data is 1 MiB from /dev/urandom repeated in a tmpfs file (not zeros: a volume stores zero
 * blocks as metadata only), made before the clock starts: a generator in the pipe (`yes | head`)
 * was measured at 0.17 MB/s in the emulated CPU and would hide the disk entirely.
 */
import { GUEST_READY } from '../v86/guest.js';
import { SerialConsole, type V86Serial } from '../v86/serial-console.js';

/** Guest RAM for the benchmarks: the 64 MiB tmpfs source plus the page cache fit in 256 MiB. */
export const BENCH_MEMORY = 256 * 2 ** 20;

export interface GuestFigures {
  bootMs: number;
  writeMBs: number;
  readMBs: number;
  writeMs?: number;
  readMs?: number;
  /** the disk's counters over the write and the read phase (when a `counters` function was given) */
  writePhase?: Record<string, number>;
  readPhase?: Record<string, number>;
}

/** Differences of numeric counters between two readings. */
function delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const k of Object.keys(after)) d[k] = Math.round(((after[k] ?? 0) - (before[k] ?? 0)) * 10) / 10;
  return d;
}

export interface GuestEmulator extends V86Serial {
  stop(): Promise<void>;
  destroy(): Promise<void>;
}

/** Boot `emulator` (already created with autostart), run the dd pair (then `after`, if given), tear it down. */
export async function measureGuest(emulator: GuestEmulator, mib = 64, timeoutMs = 1_200_000, counters?: () => Record<string, number>, after?: (con: SerialConsole) => Promise<void>): Promise<GuestFigures> {
  const t0 = performance.now();
  const con = new SerialConsole(emulator);
  try {
    await con.waitFor(GUEST_READY, timeoutMs);
    await con.waitFor('# ', 60_000);
    const bootMs = performance.now() - t0;
    const bytes = mib * 2 ** 20;
    const doublings = Math.log2(mib);
    if (!Number.isInteger(doublings)) throw new Error('mib must be a power of two');
    await con.run(
      `dd if=/dev/urandom of=/tmp/src bs=64k count=16 2>/dev/null; for i in $(seq ${doublings}); do cat /tmp/src /tmp/src > /tmp/dbl; mv /tmp/dbl /tmp/src; done`,
      timeoutMs,
    );
    const c0 = counters?.();
    let t = performance.now();
    await con.run('dd if=/tmp/src of=/mnt/bench bs=1M conv=fsync 2>/dev/null', timeoutMs);
    const writeMs = performance.now() - t;
    const c1 = counters?.();
    await con.run('sync; echo 3 > /proc/sys/vm/drop_caches', timeoutMs);
    const c2 = counters?.();
    t = performance.now();
    const size = await con.run('dd if=/mnt/bench of=/dev/null bs=1M 2>/dev/null; wc -c < /mnt/bench', timeoutMs);
    const readMs = performance.now() - t;
    const c3 = counters?.();
    if (Number(size.trim()) !== bytes) throw new Error(`the guest wrote ${size.trim()} bytes, expected ${bytes}`);
    await con.run('rm /mnt/bench /tmp/src; sync', timeoutMs);
    await after?.(con);
    const phases = c0 && c1 && c2 && c3 ? { writePhase: delta(c0, c1), readPhase: delta(c2, c3) } : {};
    return { bootMs, writeMBs: bytes / 1e6 / (writeMs / 1000), readMBs: bytes / 1e6 / (readMs / 1000), writeMs, readMs, ...phases };
  } finally {
    con.detach();
    await emulator.stop();
    await emulator.destroy();
  }
}
