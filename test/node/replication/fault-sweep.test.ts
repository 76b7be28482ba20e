/**
 * The consistency-group guarantee under a fault-injecting transport: a seeded workload writes
 * to four primaries in two groups, each group over its own transport (a same-thread link; a
 * real MessageChannel). One fault hits one session at message N: a drop, a duplicate, a
 * reorder, a delay, a disconnect, or the secondary crashing and losing what it had not flushed.
 * Every write waits for the one before (each may depend on all earlier ones), so whatever the
 * fault, the four secondaries together must equal the primaries after some prefix of the
 * writes; and in sync mode that prefix holds every write acknowledged while replicating.
 *
 * Every N up to the stream's length is swept with STRATADISK_LONG=1; npm test runs every third.
 * To replay one failing point: SWEEP_N=<n> SWEEP_V=<victim> SWEEP_DEBUG=1 and `-t '<mode>: <fault>'`.
 */
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { Link } from '../../../src/consistency/link.js';
import { portLink } from '../../../src/consistency/message-port.js';
import { localLinkPair } from '../../../src/consistency/local.js';
import { faultLink, type LinkFaultPlan } from '../../../src/replication/links/fault.js';
import { ReplicationManager } from '../../../src/replication/manager.js';
import { PrimarySession } from '../../../src/replication/primary.js';
import type { ToPrimary, ToSecondary } from '../../../src/replication/protocol.js';
import { Secondary } from '../../../src/replication/secondary.js';
import { FaultController, FaultNamespace } from '../../../src/store/fault.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';

const LONG = process.env.STRATADISK_LONG === '1';
const BS = 4096;
const BLOCKS = 32;
const VOLS = 4;
const WRITES = 40;

type Fault = 'none' | 'drop' | 'duplicate' | 'reorder' | 'delay' | 'disconnect' | 'crash';

interface Op {
  kind: 'write' | 'flush';
  vol: number;
  block: number;
  count: number;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

function workload(seed: number): Op[] {
  const r = rng(seed);
  const ops: Op[] = [];
  for (let i = 0; i < WRITES; i++) {
    const vol = Math.floor(r() * VOLS);
    const block = Math.floor(r() * BLOCKS);
    const count = Math.min(BLOCKS - block, 1 + Math.floor(r() * 3));
    ops.push({ kind: 'write', vol, block, count });
    if (r() < 0.15) ops.push({ kind: 'flush', vol: Math.floor(r() * VOLS), block: 0, count: 0 });
  }
  return ops;
}

/** Write number w (1-based) tags each of its blocks: [w, vol, block] then filler. */
function blockData(w: number, vol: number, block: number): Uint8Array {
  const d = new Uint8Array(BS);
  const v = new DataView(d.buffer);
  v.setUint32(0, w);
  v.setUint32(4, vol);
  v.setUint32(8, block);
  for (let i = 12; i < BS; i += 4) v.setUint32(i, (w * 2654435761) ^ i);
  return d;
}

/** Expected tag of every block of every volume after the first p writes. */
function stateAfter(ops: Op[], p: number): number[][] {
  const s = Array.from({ length: VOLS }, () => new Array<number>(BLOCKS).fill(0));
  let w = 0;
  for (const op of ops) {
    if (op.kind !== 'write') continue;
    if (++w > p) break;
    for (let b = op.block; b < op.block + op.count; b++) s[op.vol]![b] = w;
  }
  return s;
}

async function tags(v: Volume): Promise<number[]> {
  const all = await v.read(0, BLOCKS * BS);
  const dv = new DataView(all.buffer, all.byteOffset, all.byteLength);
  const out: number[] = [];
  for (let b = 0; b < BLOCKS; b++) {
    const w = dv.getUint32(b * BS);
    if (w !== 0) {
      // the whole block must be the tagged write's (never half of one)
      const want = blockData(w, dv.getUint32(b * BS + 4), b);
      expect(Buffer.compare(Buffer.from(all.subarray(b * BS, (b + 1) * BS)), Buffer.from(want))).toBe(0);
    }
    out.push(w);
  }
  return out;
}

function planFor(fault: Fault, n: number, seed: number): LinkFaultPlan | null {
  switch (fault) {
    case 'drop':
      return { seed, out: { drop: [n] } };
    case 'duplicate':
      return { seed, out: { duplicate: [n] } };
    case 'reorder':
      return { seed, out: { reorder: [n] } };
    case 'delay':
      return { seed, out: { delayMs: [0, 3] }, in: { delayMs: [0, 3] } };
    case 'disconnect':
      return { seed, out: { disconnectAt: n } };
    default:
      return null;
  }
}

interface Run {
  mode: 'sync' | 'async';
  fault: Fault;
  /** the session (0..3) the fault hits; 0-1 are group A (same-thread link), 2-3 group B (MessageChannel) */
  victim: number;
  n: number;
  seed: number;
}

async function run(cfg: Run): Promise<{ prefix: number; frozen: boolean; ackedReplicating: number }> {
  const ops = workload(cfg.seed);
  const manager = new ReplicationManager({ cutIntervalMs: 2 });
  const primaries: Volume[] = [];
  const sessions: PrimarySession[] = [];
  const secondaries: Secondary[] = [];
  const secNs: MemoryNamespace[] = [];
  const ctls: FaultController[] = [];
  const faulty: Link[] = [];
  const closers: (() => void)[] = [];
  let sentToVictim = 0;
  let crashed = false;
  // each secondary's image when it settled at the start of the resume: the point the group stopped at
  const images: (number[] | null)[] = new Array<number[] | null>(VOLS).fill(null);
  const capture = (i: number) => async (vol: Volume) => {
    images[i] = await tags(vol);
  };
  for (let i = 0; i < VOLS; i++) {
    const pv = await Volume.create(new MemoryNamespace(), { size: BLOCKS * BS, blockSize: BS });
    const inner = new MemoryNamespace();
    const ctl = new FaultController({});
    const sv = await Volume.create(new FaultNamespace(inner, ctl), { size: BLOCKS * BS, blockSize: BS });
    primaries.push(pv);
    secNs.push(inner);
    ctls.push(ctl);
    const sec = await Secondary.open(sv, { onSettled: capture(i) });
    secondaries.push(sec);
    const s = await PrimarySession.open(pv, { name: `s${i}`, mode: cfg.mode, ackTimeoutMs: 300, helloTimeoutMs: 5000 });
    sessions.push(s);
    manager.add(s, i < 2 ? 'A' : 'B');
  }
  const connect = (i: number, clean = false): Link<ToSecondary> => {
    let pEnd: Link;
    let sEnd: Link;
    if (i < 2) {
      [pEnd, sEnd] = localLinkPair();
    } else {
      const ch = new MessageChannel();
      pEnd = portLink(ch.port1);
      sEnd = portLink(ch.port2);
      closers.push(() => {
        ch.port1.close();
        ch.port2.close();
      });
    }
    if (i === cfg.victim && !clean) {
      // message 0 is the hello: faults start with the stream after it
      const plan = planFor(cfg.fault, cfg.n + 1, cfg.seed);
      if (plan) pEnd = faultLink(pEnd, plan);
      if (cfg.fault === 'crash') {
        // the secondary's machine dies when message n would reach it: unflushed writes are lost
        const inner = pEnd;
        pEnd = {
          send(m) {
            if (!crashed && sentToVictim++ === cfg.n + 1) {
              crashed = true;
              void ctls[i]!.crash('drop-unflushed').then(() => sEnd.close());
              return;
            }
            if (!crashed) inner.send(m);
          },
          listen: (h) => inner.listen(h),
          close: () => inner.close(),
        };
      }
      faulty.push(pEnd);
    }
    secondaries[i]!.accept(sEnd as Link<ToPrimary>);
    return pEnd as Link<ToSecondary>;
  };
  // a fault may hit the first connection already (the volumes are still empty then)
  for (let i = 0; i < VOLS; i++) await sessions[i]!.connect(connect(i)).catch(() => {});
  await manager.synced().catch(() => {});

  let w = 0;
  let ackedReplicating = 0;
  for (const op of ops) {
    const v = primaries[op.vol]!;
    if (op.kind === 'flush') {
      await v.flush();
      continue;
    }
    w++;
    const data = new Uint8Array(op.count * BS);
    for (let k = 0; k < op.count; k++) data.set(blockData(w, op.vol, op.block + k), k * BS);
    await v.write(op.block * BS, data);
    if (!manager.frozen) ackedReplicating = w;
    // async: let cuts be taken and released between writes (the manager's timer runs every 2 ms)
    if (cfg.mode === 'async' && w % 4 === 0) await new Promise((r) => setTimeout(r, 3));
  }
  // let the stream settle: everything confirmed, or a freeze (an undetected fault times out)
  for (let k = 0; k < 2000; k++) {
    if (manager.frozen && manager.lastFreeze) break;
    const st = manager.status();
    if (!manager.frozen && st.groups.every((g) => g.sessions.every((s) => s.lagWrites === 0))) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const frozen = manager.frozen;
  // (sessions connected after an early fault froze the others still stream: stop them all)
  await manager.freezeAll('the test ends');
  const dbg = (...a: unknown[]) => process.env.SWEEP_DEBUG && console.log(...a);
  dbg('idle wait');
  for (const s of secondaries) await s.idle();
  dbg('resume');
  // resume over clean links: each secondary first settles what the last connection left
  for (let i = 0; i < VOLS; i++) {
    if (ctls[i]!.crashed) {
      const reopened = await Volume.open(secNs[i]!);
      secondaries[i] = await Secondary.open(reopened, { onSettled: capture(i) });
    }
  }
  await manager.resume(async (s) => connect(sessions.indexOf(s), true));
  dbg('resumed');
  await manager.synced();
  dbg('synced again');
  const finalTags = images.map((t, i) => t ?? expect.unreachable(`secondary ${i} never settled`));
  // and then the resync brings every secondary to its primary
  for (let i = 0; i < VOLS; i++) {
    const a = await primaries[i]!.read(0, BLOCKS * BS);
    const b = await secondaries[i]!.volume.read(0, BLOCKS * BS);
    if (Buffer.compare(Buffer.from(a), Buffer.from(b)) !== 0) {
      throw new Error(`secondary ${i} differs from its primary after the resume (${JSON.stringify(cfg)}): primary ${JSON.stringify(await tags(primaries[i]!))}, secondary ${JSON.stringify(await tags(secondaries[i]!.volume))}, oos ${sessions[i]!.status().outOfSyncBytes}`);
    }
  }
  await manager.close();
  for (const c of closers) c();
  for (let i = 0; i < VOLS; i++) {
    await primaries[i]!.close();
    await secondaries[i]!.volume.close();
  }
  let prefix = -1;
  for (let p = w; p >= 0; p--) {
    const want = stateAfter(ops, p);
    if (want.every((row, i) => row.every((t, b) => finalTags[i]![b] === t))) {
      prefix = p;
      break;
    }
  }
  if (prefix < 0) {
    throw new Error(`secondaries are no prefix of the writes (${JSON.stringify(cfg)}): ${JSON.stringify(finalTags)}`);
  }
  return { prefix, frozen, ackedReplicating };
}

const FAULTS: Fault[] = ['drop', 'duplicate', 'reorder', 'delay', 'disconnect', 'crash'];

describe('replication: consistency groups under transport faults', () => {
  it('with no fault, every secondary equals its primary (sync and async)', async () => {
    for (const mode of ['sync', 'async'] as const) {
      const r = await run({ mode, fault: 'none', victim: 0, n: 0, seed: 7 });
      expect(r.prefix).toBe(WRITES);
    }
  });

  for (const mode of ['sync', 'async'] as const) {
    for (const fault of FAULTS) {
      // a secondary losing unflushed writes is covered for sync groups only (see manager.ts)
      if (mode === 'async' && fault === 'crash') continue;
      it(`${mode}: ${fault} at every message point, both groups, both transports`, async () => {
        const step = LONG ? 1 : 3;
        const points = process.env.SWEEP_N ? [Number(process.env.SWEEP_N)] : fault === 'delay' ? [0] : Array.from({ length: Math.ceil(30 / step) }, (_, k) => k * step);
        for (const n of points) {
          for (const victim of process.env.SWEEP_V ? [Number(process.env.SWEEP_V)] : [0, 2]) {
            const seed = 1000 + n * 7 + victim;
            const t0 = performance.now();
            const r = await run({ mode, fault, victim, n, seed });
            if (process.env.SWEEP_DEBUG) console.log(mode, fault, n, victim, r, Math.round(performance.now() - t0));
            if (mode === 'sync') expect(r.prefix, `n=${n} victim=${victim}`).toBeGreaterThanOrEqual(r.ackedReplicating);
            if (fault === 'duplicate' || fault === 'delay') expect(r.prefix, `n=${n} victim=${victim}`).toBe(WRITES);
          }
        }
      }, 600_000);
    }
  }
});
