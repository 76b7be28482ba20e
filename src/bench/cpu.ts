/**
 * CPU time for benchmarks on a shared machine, where wall-clock ratios swing with other load:
 * user+system seconds of this process (all its threads) and of its waited-for children
 * (the peer tools), so each side's CPU time per GiB can be reported next to its throughput.
 */
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';

/** User+system CPU seconds of this process so far (every thread, libuv's pool included). */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/**
 * User+system CPU seconds of the children this process has waited for (Linux: cutime+cstime of
 * /proc/self/stat); NaN where that is not available.
 */
export function childCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // after "pid (comm) ": state is field 3, so cutime (16) and cstime (17) are at 13 and 14 here
    return (Number(f[13]) + Number(f[14])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

/** The 1-minute load average, rounded (0 where the platform has none). */
export function load1(): number {
  return Math.round(loadavg()[0]! * 10) / 10;
}
