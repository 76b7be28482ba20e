import { describe, expect, it, vi } from 'vitest';
import { MemoryNamespace } from '../../../src/store/memory.ts';
import { Volume } from '../../../src/volume/volume.ts';
import { coalesce, V86Disk, type DiskVolume } from '../../../src/v86/disk-adapter.ts';
import { equalBytes, Rng } from '../helpers/random.ts';

const MiB = 1 << 20;
const OPS = Number(process.env.OPS ?? 3000);

/** A volume wrapper that delays every call, so reads and writes overlap as they do behind a worker. */
function slow(v: DiskVolume, rng: Rng): DiskVolume & { calls: { read: number; write: number } } {
  const calls = { read: 0, write: 0 };
  const later = () => new Promise((r) => setTimeout(r, rng.int(3)));
  return {
    size: v.size,
    blockSize: v.blockSize,
    calls,
    async read(o, n) {
      calls.read++;
      await later();
      return v.read(o, n);
    },
    async write(o, d) {
      calls.write++;
      const copy = d.slice();
      await later();
      return v.write(o, copy);
    },
    flush: () => v.flush(),
  };
}

function get(disk: V86Disk, start: number, len: number): Promise<Uint8Array> {
  return new Promise((resolve) => disk.get(start, len, resolve));
}

describe('V86Disk', () => {
  it('load() primes the boot sector for get_from_cache and calls onload', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: 8 * MiB });
    const mbr = new Uint8Array(512).fill(7);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    await vol.write(0, mbr);
    const disk = new V86Disk(vol);
    expect(disk.byteLength).toBe(8 * MiB);
    const loaded = new Promise<object>((r) => (disk.onload = r));
    disk.load();
    expect(await loaded).toEqual({});
    expect(disk.get_from_cache(0, 512)).toEqual(mbr);
    expect(disk.get_from_cache(4 * MiB, 512)).toBeUndefined();
    expect(disk.get_state()).toEqual([8 * MiB]);
    await vol.close();
  });

  it('matches a flat model under overlapping PIO/DMA writes and reads, and batches volume calls', async () => {
    const rng = new Rng(86);
    const size = 16 * MiB;
    const vol = await Volume.create(new MemoryNamespace(), { size, blockSize: 4096 });
    const sv = slow(vol, rng);
    const disk = new V86Disk(sv, { flushBytes: 256 * 1024, flushIntervalMs: 50, cacheBytes: 1 * MiB });
    await new Promise<object>((r) => {
      disk.onload = r;
      disk.load();
    });
    const model = new Uint8Array(size);
    const pio = new Uint8Array(64 * 1024); // v86 reuses its PIO buffer: the adapter must copy
    let sectorsWritten = 0;
    for (let op = 0; op < OPS; op++) {
      const sectors = rng.pick([1, 1, 8, 8, 16, 128]);
      // Mostly sequential runs, some random jumps, like a file system.
      const start = (rng.int(4) === 0 ? rng.int(size / 512 - sectors) : (op * 8) % (size / 512 - sectors)) * 512;
      const len = sectors * 512;
      if (rng.int(2) === 0) {
        const useDma = rng.int(2) === 0;
        const data = useDma ? rng.bytes(len) : pio.subarray(0, len);
        if (!useDma) data.set(rng.bytes(len));
        model.set(data, start);
        let acked = !useDma;
        disk.set(start, data, useDma ? () => (acked = true) : () => {});
        if (!useDma) data.fill(0xee); // v86 reuses the buffer at once
        expect(acked).toBe(true);
        sectorsWritten += sectors;
      } else {
        // One command at a time, as v86's IDE channel issues them (write-backs stay in flight).
        const expected = model.slice(start, start + len);
        expect(equalBytes(await get(disk, start, len), expected)).toBe(true);
      }
      if (op % 97 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await disk.flush();
    await disk.settle();
    // Everything reached the volume.
    expect(equalBytes(await vol.read(0, size), model)).toBe(true);
    const st = disk.stats;
    expect(st.guestWrites).toBeGreaterThan(1000);
    expect(sv.calls.write).toBeLessThan(st.guestWrites);
    expect(sv.calls.write * 4).toBeLessThan(sectorsWritten);
    await disk.close();
    await vol.close();
  });

  it('turns sector-sized guest I/O into a few large volume calls', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: 16 * MiB });
    const sv = slow(vol, new Rng(3));
    const disk = new V86Disk(sv, { flushBytes: 1 * MiB, flushIntervalMs: 1000 });
    await new Promise<object>((r) => {
      disk.onload = r;
      disk.load();
    });
    const pio = new Uint8Array(512);
    for (let s = 0; s < (8 * MiB) / 512; s++) {
      pio.fill(s & 0xff);
      disk.set(s * 512, pio, () => {}); // 16,384 one-sector writes, as PIO makes them
    }
    await disk.flush();
    expect(sv.calls.write).toBeLessThanOrEqual(16);
    const before = sv.calls.read;
    for (let s = 0; s < (8 * MiB) / 512; s++) {
      const got = await get(disk, s * 512, 512);
      if (got[0] !== (s & 0xff)) throw new Error(`sector ${s} reads ${got[0]}`);
    }
    // Read-ahead grows to 2 MiB: 8 MiB of sector reads cost a handful of volume reads.
    expect(sv.calls.read - before).toBeLessThanOrEqual(16);
    await disk.close();
    await vol.close();
  });

  it('keeps read-ahead in flight for a sequential reader whose reads are interleaved with metadata reads', async () => {
    const size = 64 * MiB;
    const vol = await Volume.create(new MemoryNamespace(), { size });
    for (let o = 0; o < size; o += 4 * MiB) await vol.write(o, new Uint8Array(4 * MiB).fill((o / MiB) & 0xff));
    const sv = slow(vol, new Rng(5));
    const disk = new V86Disk(sv, { flushIntervalMs: 60_000 });
    await new Promise<object>((r) => {
      disk.onload = r;
      disk.load();
    });
    const before = sv.calls.read;
    // 48 MiB read in 128 KiB requests from 8 MiB on, with a metadata read elsewhere every 4 MiB
    // (as ext2's indirect blocks make a file read look). Between requests the guest computes
    // (a timer), so read-ahead has time to land.
    for (let o = 8 * MiB, n = 0; o < 56 * MiB; o += 128 * 1024, n++) {
      if (n % 32 === 31) await get(disk, 60 * MiB + n * 4096, 4096);
      const got = await get(disk, o, 128 * 1024);
      if (got[0] !== Math.floor(o / MiB) - (Math.floor(o / MiB) % 4)) throw new Error(`offset ${o} reads ${got[0]}`);
      await new Promise((r) => setTimeout(r, 1));
    }
    const s = disk.stats;
    expect(s.prefetches).toBeGreaterThan(0);
    // Waits only while the window grows (64 KiB → 8 MiB) and for the scattered metadata reads.
    expect(s.misses).toBeLessThan(24);
    expect(sv.calls.read - before).toBeLessThan(40);
    // A revert under a prefetch in flight: what lands after invalidate() is not cached.
    disk.get(8 * MiB, 512, () => {});
    await disk.settle();
    await vol.write(8 * MiB, new Uint8Array(512).fill(0xee));
    disk.invalidate();
    expect((await get(disk, 8 * MiB, 512))[0]).toBe(0xee);
    await disk.close();
    await vol.close();
  });

  it('answers cached reads synchronously and never holds a dirty byte past flush()', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: 4 * MiB });
    const disk = new V86Disk(vol, { flushIntervalMs: 60_000 });
    await new Promise<object>((r) => {
      disk.onload = r;
      disk.load();
    });
    disk.set(1024, new Uint8Array(512).fill(3));
    let sync: Uint8Array | undefined;
    disk.get(1024, 512, (d) => (sync = d)); // unit 0 is cached: answered before get returns
    expect(sync).toEqual(new Uint8Array(512).fill(3));
    expect(disk.stats.dirtyBytes).toBe(512);
    await disk.flush();
    expect(disk.stats.dirtyBytes).toBe(0);
    expect(await vol.read(1024, 512)).toEqual(new Uint8Array(512).fill(3));
    await disk.close();
    await vol.close();
  });

  it('flush() resolves only after a barrier already running (the timer\'s) resolved', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: 4 * MiB });
    let release!: () => void;
    let called!: () => void;
    const flushCalled = new Promise<void>((r) => (called = r));
    const gate = new Promise<void>((r) => (release = r));
    let flushes = 0;
    const gated: DiskVolume = {
      size: vol.size,
      blockSize: vol.blockSize,
      read: (o, n) => vol.read(o, n),
      write: (o, d) => vol.write(o, d),
      async flush() {
        flushes++;
        called();
        await gate;
        await vol.flush();
      },
    };
    const disk = new V86Disk(gated, { flushIntervalMs: 1 });
    disk.set(4096, new Uint8Array(512).fill(1));
    await flushCalled; // the timer's barrier runs and is held
    let done = false;
    const explicit = disk.flush().then(() => (done = true));
    await new Promise((r) => setTimeout(r, 0));
    expect(done).toBe(false); // the guest's data is written but not yet durable
    release();
    await explicit;
    expect(flushes).toBe(1);
    await disk.close();
    await vol.close();
  });

  it('a failed timer flush is reported and retried by the next flush()', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: 4 * MiB });
    let fail = true;
    let flushes = 0;
    const flaky: DiskVolume = {
      size: vol.size,
      blockSize: vol.blockSize,
      read: (o, n) => vol.read(o, n),
      write: (o, d) => vol.write(o, d),
      async flush() {
        flushes++;
        if (fail) {
          fail = false;
          throw new Error('flush failed');
        }
        await vol.flush();
      },
    };
    const errors: unknown[] = [];
    let reported!: () => void;
    const wasReported = new Promise<void>((r) => (reported = r));
    const disk = new V86Disk(flaky, {
      flushIntervalMs: 1,
      onError: (e) => {
        errors.push(e);
        reported();
      },
    });
    disk.set(4096, new Uint8Array(512).fill(1));
    await wasReported;
    expect(errors).toMatchObject([{ message: 'flush failed' }]);
    await disk.flush();
    expect(flushes).toBe(2);
    await disk.close();
    await vol.close();
  });

  it('flushIntervalMs: Infinity keeps written data in memory until a flush', async () => {
    vi.useFakeTimers();
    try {
      const vol = await Volume.create(new MemoryNamespace(), { size: 4 * MiB });
      let flushes = 0;
      const counted: DiskVolume = { size: vol.size, blockSize: vol.blockSize, read: (o, n) => vol.read(o, n), write: (o, d) => vol.write(o, d), flush: () => (flushes++, vol.flush()) };
      const disk = new V86Disk(counted, { flushIntervalMs: Infinity });
      disk.set(4096, new Uint8Array(512).fill(1));
      await vi.advanceTimersByTimeAsync(24 * 3600 * 1000);
      expect(disk.stats.dirtyBytes).toBe(512);
      expect(flushes).toBe(0);
      await disk.flush();
      expect(flushes).toBe(1);
      expect(disk.stats.dirtyBytes).toBe(0);
      await disk.close();
      await vol.close();
      expect(() => new V86Disk(vol, { flushIntervalMs: -1 })).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses a disk that is not whole sectors, and guest accesses past the end', async () => {
    const vol = await Volume.create(new MemoryNamespace(), { size: 1000 });
    expect(() => new V86Disk(vol)).toThrow(/multiple of 512/);
    const ok = await Volume.create(new MemoryNamespace(), { size: 1024 });
    const disk = new V86Disk(ok);
    expect(() => disk.get(512, 1024, () => {})).toThrow(expect.objectContaining({ code: 'out-of-range' }));
    await vol.close();
    await ok.close();
  });
});

describe('coalesce', () => {
  it('merges touching and overlapping extents, newest bytes winning', () => {
    const e = (start: number, fill: number, n: number) => ({ start, data: new Uint8Array(n).fill(fill) });
    const runs = coalesce([e(1024, 1, 512), e(0, 2, 512), e(512, 3, 1024), e(4096, 4, 512), e(1024, 5, 256)]);
    expect(runs.map((r) => [r.start, r.data.length])).toEqual([[0, 1536], [4096, 512]]);
    const r = runs[0]!.data;
    expect(r[0]).toBe(2);
    expect(r[600]).toBe(3);
    expect(r[1024]).toBe(5);
    expect(r[1300]).toBe(3);
  });
});
