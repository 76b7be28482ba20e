/**
 * `volume.replication` through the worker protocol, in one thread (host and client over
 * MessageChannels, like in-process.test.ts): two engines stand for two tabs, their volumes talk
 * over a BroadcastChannel; a third side is a Node Secondary behind listenReplicaWs. The real
 * browser runs are test/e2e/replication.test.ts.
 */
import { MessageChannel } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { StrataClient, type RemoteVolume, type ReplicationEvent } from '../../../src/worker/client.js';
import { exposeEngine } from '../../../src/worker/host.js';
import { memoryBackend } from '../../../src/worker/backends.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Secondary } from '../../../src/replication/secondary.js';
import { listenReplicaWs } from '../../../src/replication/links/node.js';
import { Rng, equalBytes } from '../helpers/random.js';

const BS = 4096;
const SIZE = 128 * BS;
/** short liveness checks, so a vanished side is noticed within the test */
const TIMING = { heartbeatMs: 100, deadAfterMs: 1500, connectTimeoutMs: 5000 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tab() {
  const ch = new MessageChannel();
  exposeEngine(ch.port2 as never, { backends: { memory: memoryBackend() } });
  const client = StrataClient.connect(ch.port1 as never);
  cleanups.push(async () => {
    await client.close().catch(() => {});
    ch.port1.close();
    ch.port2.close();
  });
  return client;
}

async function until(what: string, cond: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function same(a: RemoteVolume, b: { read(o: number, n: number): Promise<Uint8Array> }): Promise<boolean> {
  return equalBytes(await a.read(0, SIZE), await b.read(0, SIZE));
}

describe('volume.replication between two engines over a BroadcastChannel', () => {
  it('sync: copies, streams, freezes when the replica goes, resumes with only the out-of-sync bytes', async () => {
    const a = await tab().createVolume({ backend: 'memory', path: 'a' }, { size: SIZE, blockSize: BS });
    const clientB = tab();
    const b = await clientB.createVolume({ backend: 'memory', path: 'b' }, { size: SIZE, blockSize: BS });
    const rng = new Rng(17);
    for (let i = 0; i < 10; i++) await a.write(i * 3 * BS, rng.bytes(2 * BS));
    const replicaEvents: ReplicationEvent[] = [];
    await b.replication.serveReplica({ broadcast: 'disk-1', ...TIMING }, { onEvent: (e) => replicaEvents.push(e) });
    const events: ReplicationEvent[] = [];
    const info = await a.replication.replicateTo({ broadcast: 'disk-1', ...TIMING }, { name: 's1', mode: 'sync', group: 'g', onEvent: (e) => events.push(e) });
    expect(info).toMatchObject({ name: 's1', group: 'g', mode: 'sync', target: 'broadcast:disk-1 (primary -> replica)' });
    await a.replication.synced();
    // the first copy: only the allocated blocks (20 of 128)
    expect((await a.replication.status()).sessions[0]!.sentBytes).toBe(20 * BS);
    for (let i = 0; i < 10; i++) await a.write((40 + i) * BS, rng.bytes(BS));
    await a.flush();
    expect(await same(a, b)).toBe(true); // sync: acknowledged means the replica has it
    const sa = await a.replication.status();
    expect(sa).toMatchObject({ role: 'primary', frozen: false, serving: null });
    expect(sa.sessions[0]).toMatchObject({ state: 'replicating', lagWrites: 0, outOfSyncBytes: 0 });
    const sb = await b.replication.status();
    expect(sb).toMatchObject({ role: 'secondary', consistent: true, generation: sa.generation });
    expect(sb.serving).toMatchObject({ connected: true, session: 's1', mode: 'sync' });
    await until('state events on the page', async () => events.some((e) => e.type === 'state' && e.state === 'replicating'));
    expect(replicaEvents.some((e) => e.type === 'replica' && e.state === 'connected')).toBe(true);

    // the replica's page closes its volume: serving stops, the link ends, the primary freezes
    await clientB.close();
    await until('the freeze', async () => (await a.replication.status()).frozen);
    expect((await a.replication.status()).sessions[0]!.state).toBe('frozen');
    for (let i = 0; i < 5; i++) await a.write((60 + 2 * i) * BS, rng.bytes(BS)); // policy run: writes go on
    expect((await a.replication.status()).sessions[0]!.outOfSyncBytes).toBe(5 * BS);
    expect(events.some((e) => e.type === 'frozen')).toBe(true);
    expect(replicaEvents.some((e) => e.type === 'replica' && e.state === 'stopped')).toBe(true);
  });

  it('resume after the replica stops serving moves only the out-of-sync bytes', async () => {
    const a = await tab().createVolume({ backend: 'memory', path: 'a' }, { size: SIZE, blockSize: BS });
    const b = await tab().createVolume({ backend: 'memory', path: 'b' }, { size: SIZE, blockSize: BS });
    const rng = new Rng(5);
    for (let i = 0; i < 8; i++) await a.write(i * BS, rng.bytes(BS));
    await b.replication.serveReplica({ broadcast: 'disk-2', ...TIMING });
    await a.replication.replicateTo({ broadcast: 'disk-2', ...TIMING }, { name: 's2' });
    await a.replication.synced();
    await b.replication.stop(); // the replica stops serving: the link ends, the primary freezes
    await until('the freeze', async () => (await a.replication.status()).frozen);
    for (let i = 0; i < 6; i++) await a.write((20 + 3 * i) * BS, rng.bytes(2 * BS));
    const before = (await a.replication.status()).sessions[0]!;
    expect(before.outOfSyncBytes).toBe(12 * BS);
    await b.replication.serveReplica({ broadcast: 'disk-2', ...TIMING });
    await a.replication.resume();
    await a.replication.synced();
    const after = (await a.replication.status()).sessions[0]!;
    expect(after.sentBytes - before.sentBytes).toBe(12 * BS);
    expect(after).toMatchObject({ state: 'replicating', outOfSyncBytes: 0 });
    expect((await a.replication.status()).frozen).toBe(false);
    expect(await same(a, b)).toBe(true);
  });

  it('promote and demote change the role and the data generation; refusals have codes', async () => {
    const a = await tab().createVolume({ backend: 'memory', path: 'a' }, { size: SIZE, blockSize: BS });
    const b = await tab().createVolume({ backend: 'memory', path: 'b' }, { size: SIZE, blockSize: BS });
    await b.replication.serveReplica({ broadcast: 'disk-3', ...TIMING });
    await expect(b.replication.replicateTo({ broadcast: 'x' })).rejects.toMatchObject({ code: 'locked' });
    await expect(b.replication.serveReplica({ broadcast: 'disk-3' })).rejects.toMatchObject({ code: 'exists' });
    // the page's own writes to a secondary are refused (they would differ from the primary unseen)
    await expect(b.write(0, new Uint8Array(BS))).rejects.toMatchObject({ code: 'read-only' });
    await expect(b.writeZeroes(0, BS)).rejects.toMatchObject({ code: 'read-only' });
    await a.replication.replicateTo({ broadcast: 'disk-3', ...TIMING }, { name: 's3' });
    await a.replication.synced();
    await a.write(0, new Uint8Array(BS).fill(7));
    const gen = (await b.replication.status()).generation;
    const promoted = await b.replication.promote();
    expect(promoted).toMatchObject({ role: 'primary', serving: null });
    expect(promoted.generation).not.toBe(gen);
    expect((await b.read(0, BS))[0]).toBe(7);
    await b.write(BS, new Uint8Array(BS).fill(8)); // a primary now: writable
    await until('the old primary froze', async () => (await a.replication.status()).frozen);
    const demoted = await a.replication.demote();
    expect(demoted).toMatchObject({ role: 'secondary', sessions: [] });
    await expect(a.write(0, new Uint8Array(BS))).rejects.toMatchObject({ code: 'read-only' });
    await expect(a.replication.replicateTo({ broadcast: 'y' })).rejects.toMatchObject({ code: 'invalid-argument' });
    // targets and options are checked in the worker
    await expect(b.replication.replicateTo({ websocket: 'ws://127.0.0.1:1/replica', token: 'short' })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(b.replication.replicateTo({ broadcast: 'z' }, { mode: 'fast' as never })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(b.replication.serveReplica({ websocket: 'ws://x', token: 'x'.repeat(20) } as never)).rejects.toMatchObject({ code: 'unsupported' });
    await expect(b.replication.replicateTo({ broadcast: 'nobody', connectTimeoutMs: 200 })).rejects.toMatchObject({ code: 'timeout' });
    expect((await b.replication.status()).sessions).toEqual([]);
  });
});

describe('volume.replication to a Node replica server over WebSocket', () => {
  it('async: copies and streams; the token never shows in status or events', async () => {
    const token = 'a-test-token-of-enough-length-1234';
    const sv = await Volume.create(new MemoryNamespace(), { size: SIZE, blockSize: BS });
    const secondary = await Secondary.open(sv);
    const server = await listenReplicaWs({ host: '127.0.0.1', port: 0, token, onLink: (l) => secondary.accept(l as never) });
    cleanups.push(async () => {
      await secondary.close();
      await server.close();
    });
    const a = await tab().createVolume({ backend: 'memory', path: 'a' }, { size: SIZE, blockSize: BS });
    const rng = new Rng(9);
    for (let i = 0; i < 6; i++) await a.write(i * 5 * BS, rng.bytes(BS));
    const events: ReplicationEvent[] = [];
    await a.replication.replicateTo({ websocket: server.url, token }, { name: 'ws1', mode: 'async', onEvent: (e) => events.push(e) });
    await a.replication.synced();
    for (let i = 0; i < 20; i++) await a.write(((i * 7) % 100) * BS, rng.bytes(BS));
    await a.flush();
    await until('the replica caught up', async () => (await a.replication.status()).sessions[0]!.lagWrites === 0);
    expect(await same(a, sv)).toBe(true);
    const status = await a.replication.status();
    expect(status.sessions[0]).toMatchObject({ target: server.url, mode: 'async', state: 'replicating' });
    expect(JSON.stringify(status)).not.toContain(token);
    expect(JSON.stringify(events)).not.toContain(token);
    await a.replication.stop('ws1');
    expect((await a.replication.status()).sessions).toEqual([]);
  });
});
