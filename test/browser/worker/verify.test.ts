/**
 * Verify on read in real Chromium: a byte flipped in an OPFS layer file is refused through the
 * worker API with checksum-mismatch (issue 12, item 1); the rest of the volume still reads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { StrataClient } from '../../../src/worker/client.js';
import { newWorker, pattern, rejectsWithCode, uniquePath } from './helpers.js';

const KiB = 1024;
const workers: Worker[] = [];
afterEach(() => {
  for (const w of workers.splice(0)) w.terminate();
});

/** Flip a byte of an OPFS file from the page (async OPFS: the worker has closed its handles). */
async function flip(path: string, file: string, at: number): Promise<void> {
  let dir = await navigator.storage.getDirectory();
  for (const part of path.split('/')) dir = await dir.getDirectoryHandle(part);
  const h = await dir.getFileHandle(file);
  const old = new Uint8Array(await (await h.getFile()).slice(at, at + 1).arrayBuffer());
  const w = await h.createWritable({ keepExistingData: true });
  await w.write({ type: 'write', position: at, data: new Uint8Array([old[0]! ^ 0x20]) });
  await w.close();
}

describe('verify on read in Chromium', () => {
  it('an OPFS volume with a damaged block: checksum-mismatch through the worker, good blocks still read', async () => {
    const path = uniquePath('verify');
    const worker = newWorker();
    workers.push(worker);
    const client = StrataClient.connect(worker);
    const v = await client.createVolume({ backend: 'opfs', path }, { size: 1024 * KiB, blockSize: 64 * KiB });
    const data = pattern(512 * KiB, 3);
    await v.write(0, data.slice());
    await v.close();
    await flip(path, 'L000001.data', 3 * 64 * KiB + 123);
    const again = await client.openVolume({ backend: 'opfs', path });
    const e = await rejectsWithCode(again.read(3 * 64 * KiB + 4 * KiB, 4 * KiB), 'checksum-mismatch');
    expect(e.message).toContain(`bytes ${3 * 64 * KiB}-${4 * 64 * KiB - 1}`);
    await rejectsWithCode(again.read(0, 512 * KiB), 'checksum-mismatch');
    expect(await again.read(4 * 64 * KiB, 4 * 64 * KiB)).toEqual(data.subarray(4 * 64 * KiB));
    expect(await again.read(100, 1000)).toEqual(data.subarray(100, 1100));
    await again.close();
  });
});
