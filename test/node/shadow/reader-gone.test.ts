/**
 * A passive reader in a separate process that dies must not take the writer down: posting to its
 * closed IPC channel (EPIPE, channel closed) is not an error of the writer. Found in a loaded CI
 * run as an uncaught `write EPIPE` from the shadow stress test's separate-process reader.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ShadowVolume } from '../../../src/shadow/index.js';
import { MemoryNamespace, MemoryStore } from '../../../src/store/memory.js';
import { Rng, equalBytes } from '../helpers/random.js';

const dir = mkdtempSync(join(tmpdir(), 'stratadisk-reader-gone-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a passive reader process that dies', () => {
  it('leaves the writer writing: no error from posting to its closed channel', async () => {
    // the reader says hello like ShadowReader does, then dies as soon as it is welcomed
    const script = join(dir, 'reader.mjs');
    writeFileSync(script, "process.on('message', (m) => { if (m && m.t === 'welcome') process.exit(0); });\nprocess.send({ t: 'hello', rid: 1, copy: 'a', shared: false });\n");
    const BS = 512;
    const model = new Rng(8).bytes(BS * 64);
    const volume = new MemoryStore(model.slice());
    const sv = await ShadowVolume.open(new MemoryStore(volume.backing), new MemoryNamespace(), { blockSize: BS, sharedMemory: false });
    await sv.createShadow({ name: 'a' });
    const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const errors: unknown[] = [];
    child.on('error', (e) => errors.push(e)); // where an unhandled post error would go (else: an uncaught exception)
    const stop = sv.serve(child);
    await new Promise((r) => child.once('exit', r));
    // every kind of post to the dead reader: publications of preserved blocks, a new copy's chain
    for (let i = 0; i < 8; i++) await sv.write(i * 4 * BS, new Uint8Array(2 * BS).fill(i + 1));
    await sv.createShadow({ name: 'b' });
    await sv.write(40 * BS, new Uint8Array(BS).fill(9));
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r)); // let deferred send errors (process.nextTick) surface
    expect(errors).toEqual([]);
    const at = model.slice();
    expect(equalBytes(await sv.openShadow('a').read(0, BS * 64), at)).toBe(true);
    stop();
    await sv.close();
  });
});
