/**
 * A page of a consistency group, for test/e2e/consistency.test.ts. Every page joins the group
 * over a BroadcastChannel as a participant running ledger writers; the page that holds the
 * group's Web Lock is also the host: it opens the two OPFS volumes in its own dedicated worker
 * (taking their writer locks), coordinates, and serves the other pages' writes. When the host
 * page dies the next page in line for the lock takes over and reopens the volumes.
 */
import { checkLedger, LedgerWriter } from '../../../src/bench/ledger.js';
import { connectBroadcast, electHost, serveBroadcast, type Election } from '../../../src/consistency/broadcast-channel.js';
import { GroupHost, type HostVolume } from '../../../src/consistency/host.js';
import { Participant } from '../../../src/consistency/participant.js';
import type { ToHost } from '../../../src/consistency/protocol.js';
import { isStrataError } from '../../../src/errors.js';
import { StrataClient, type RemoteVolume } from '../../../src/worker/client.js';

const BS = 4096;
const HEARTBEAT_MS = 250;
const DEAD_AFTER_MS = 2000;

let election: Election | undefined;
let host: GroupHost | undefined;
let vols: { a: RemoteVolume; b: RemoteVolume } | undefined;
let participant: Participant | undefined;
let stallMs = 0;
const log = (s: string) => (document.getElementById('log')!.textContent += s + '\n');

async function openOrCreate(client: StrataClient, path: string): Promise<RemoteVolume> {
  for (let i = 0; ; i++) {
    try {
      return await client.openVolume({ backend: 'opfs', path });
    } catch (e) {
      if (isStrataError(e, 'not-found')) return client.createVolume({ backend: 'opfs', path }, { size: 1 << 20, blockSize: BS });
      // The previous host's worker may still be letting go of the volume's lock.
      if (!isStrataError(e, 'locked') || i > 100) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A volume as the host serves it; snapshots can be slowed down to test a host dying mid-freeze. */
function served(v: RemoteVolume): HostVolume {
  return {
    size: v.size,
    blockSize: v.blockSize,
    read: (o, n) => v.read(o, n),
    write: (o, d) => v.write(o, d),
    writeZeroes: (o, n) => v.writeZeroes(o, n),
    flush: () => v.flush(),
    snapshot: async (name) => {
      if (stallMs > 0) await new Promise((r) => setTimeout(r, stallMs));
      return v.snapshot(name);
    },
    deleteSnapshot: (name) => v.deleteSnapshot(name),
  };
}

async function join(group: string, name: string, hold: boolean): Promise<void> {
  // One place in the line for the lock per page; a rejoin keeps it.
  election ??= electHost(group, async () => {
    const worker = new Worker(new URL('../../../src/worker/entry.ts', import.meta.url), { type: 'module' });
    const client = StrataClient.connect(worker);
    const a = await openOrCreate(client, `cg/${group}/a`);
    const b = await openOrCreate(client, `cg/${group}/b`);
    vols = { a, b };
    host = new GroupHost({ a: served(a), b: served(b) }, { heartbeatMs: HEARTBEAT_MS, deadAfterMs: DEAD_AFTER_MS });
    const serving = serveBroadcast(host, group, { heartbeatMs: HEARTBEAT_MS });
    log(`${name}: host of ${group}`);
    return async () => {
      serving.close();
      host?.close();
      await client.close();
      worker.terminate();
    };
  });
  participant = new Participant(connectBroadcast<ToHost>(group, { deadAfterMs: DEAD_AFTER_MS }), { name, hold });
  await participant.ready;
  log(`${name}: joined ${group}`);
}

/** Run ledger writers `writers` for `ms`, asking for a snapshot every `snapshotEvery` ms. */
async function run(writers: number[], ms: number, snapshotEvery: number) {
  const p = participant!;
  const a = p.volume('a');
  const b = p.volume('b');
  const end = performance.now() + ms;
  const requested: string[] = [];
  const failures: string[] = [];
  const loops = writers.map(async (w) => {
    const lw = new LedgerWriter(w, a, b);
    while (performance.now() < end) await p.gate.run(() => lw.transfer());
    return lw.seq;
  });
  const snaps = (async () => {
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, snapshotEvery));
      try {
        requested.push((await p.requestSnapshot()).id);
      } catch (e) {
        failures.push((e as { code?: string }).code ?? String(e));
      }
    }
  })();
  const transfers = await Promise.all(loops);
  await snaps;
  return { transfers, requested, failures, seen: [...p.snapshotsSeen] };
}

/** On the host: check the invariant in every snapshot of the set. */
async function verify(writers: number) {
  const { a, b } = vols!;
  await host!.coordinator.whenIdle();
  const names = (await a.snapshots()).map((s) => s.name);
  const namesB = (await b.snapshots()).map((s) => s.name);
  const violations: string[] = [];
  for (const n of names) {
    const [sa, sb] = [await a.openSnapshot(n), await b.openSnapshot(n)];
    for (const v of await checkLedger(sa, sb, writers, BS)) violations.push(`${n}: ${v}`);
    await sa.close();
    await sb.close();
  }
  return { snapshots: names, sameOnB: JSON.stringify(names) === JSON.stringify(namesB), violations, live: await checkLedger(a, b, writers, BS) };
}

function status() {
  return {
    isHost: election?.isHost ?? false,
    participants: host?.participants ?? [],
    frozen: participant?.frozen ?? false,
    gateFrozen: participant?.gate.isFrozen ?? false,
    autoThaws: participant?.autoThaws ?? 0,
  };
}

/** Start a snapshot request without waiting for it; its outcome lands in `lastRequest`. */
let lastRequest: string | undefined;
function requestInBackground(): void {
  lastRequest = 'pending';
  participant!.requestSnapshot().then(
    (s) => (lastRequest = `ok ${s.id}`),
    (e) => (lastRequest = `error ${(e as { code?: string }).code}`),
  );
}

/** Leave the group (the participant; the election too) and join again, e.g. after a host change. */
async function rejoin(group: string, name: string, hold: boolean): Promise<void> {
  participant?.close();
  await join(group, name, hold);
}

declare global {
  interface Window {
    __cg: Record<string, unknown>;
  }
}

window.__cg = {
  join,
  rejoin,
  run,
  verify,
  status,
  requestInBackground,
  lastRequest: () => lastRequest,
  seen: () => [...(participant?.snapshotsSeen ?? [])],
  lost: () => participant?.lost.then((r) => r),
  stall: (ms: number) => (stallMs = ms),
  ready: true,
};
