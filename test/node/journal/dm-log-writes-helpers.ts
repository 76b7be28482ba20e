/** Shared by the dm-log-writes tests: a replay onto bytes, and a store that records its reads. */
import { DmLogFlag, type DmLogEntry } from '../../../src/journal/dm-log-writes-format.js';
import type { DmLogReader } from '../../../src/journal/dm-log-writes-reader.js';
import { MemoryStore } from '../../../src/store/memory.js';

/**
 * Replay a log onto `image` (changed in place), as replay-log does: a write puts its data, a
 * discard zeroes its range, flushes and marks change nothing. `onEntry` sees the image after
 * each entry. Reads the log in batches.
 */
export async function replay(reader: DmLogReader, image: Uint8Array, onEntry?: (e: DmLogEntry, image: Uint8Array) => void): Promise<DmLogEntry[]> {
  const seen: DmLogEntry[] = [];
  for await (const batch of reader.batches()) {
    for (const e of batch.entries) {
      if (e.flags & DmLogFlag.DISCARD) image.fill(0, e.offset, e.offset + e.length);
      else if (e.dataLength > 0) {
        if (batch.bytes) image.set(batch.bytes.subarray(e.dataOffset - batch.offset, e.dataOffset - batch.offset + e.dataLength), e.offset);
        else await reader.readData(e, image.subarray(e.offset, e.offset + e.dataLength));
      }
      seen.push(e);
      onEntry?.(e, image);
    }
  }
  return seen;
}

/** A MemoryStore that counts reads and remembers the largest. */
export class CountingStore extends MemoryStore {
  reads = 0;
  largest = 0;
  override async readInto(offset: number, target: Uint8Array): Promise<void> {
    this.reads++;
    this.largest = Math.max(this.largest, target.length);
    return super.readInto(offset, target);
  }
}

/** A fixed-size MemoryStore, as a raw device is (writes past the end fail, no truncate). */
export function fixedStore(size: number): MemoryStore {
  const s = new MemoryStore(new Uint8Array(size));
  Object.defineProperty(s, 'resizable', { value: false });
  return s;
}
