/**
 * Replication (group `replication`, issue 17), both sides on Node files in one temporary
 * directory, the secondary in this same process over loopback TCP (token handshake, framing,
 * heartbeats: the real link), paired rounds:
 * - throughput of sequential 1 MiB writes, sync and async vs no replication (target async ≥ 0.8×);
 * - QD1 4 KiB write latency, sync vs no replication (target ≤ 2× plus the round trip; the round
 *   trip is measured on the same link);
 * - time from a copy failure (one session's link breaks) to every session of two groups frozen,
 *   for each transport the failing session uses (target ≤ 50 ms).
 * The secondary shares this process's one JS thread and the machine's 2 cores with the primary.
 */
import { randomFillSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import type { Link } from '../consistency/link.js';
import { localLinkPair } from '../consistency/local.js';
import { portLink } from '../consistency/message-port.js';
import { connectReplicaTcp, listenReplicaTcp } from '../replication/links/tcp.js';
import { connectReplicaWs } from '../replication/links/websocket.js';
import { listenReplicaWs } from '../replication/links/websocket-server.js';
import { ReplicationManager } from '../replication/manager.js';
import { PrimarySession } from '../replication/primary.js';
import type { ToPrimary, ToSecondary } from '../replication/protocol.js';
import { Secondary } from '../replication/secondary.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { Volume } from '../volume/volume.js';
import { pairedResult, result, runPairedRounds, type BenchResult } from './result.js';

const MiB = 1 << 20;

export const REPLICATION_ROWS = {
  asyncThroughput: 'replication: sequential 1 MiB writes, async over loopback TCP vs no replication',
  syncThroughput: 'replication: sequential 1 MiB writes, sync over loopback TCP vs no replication',
  syncLatency: 'replication: QD1 4 KiB write latency, sync over loopback TCP vs no replication + link round trip',
  freeze: 'replication: copy failure to every primary of two groups frozen',
} as const;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchReplication(opts: { quick?: boolean } = {}): Promise<BenchResult[]> {
  const quick = opts.quick === true;
  const size = quick ? 64 * MiB : 256 * MiB;
  const latencyOps = quick ? 500 : 3000;
  const rounds = quick ? 1 : 3;
  const dir = await mkdtemp(join(tmpdir(), 'stratadisk-bench-replication-'));
  const token = randomBytes(24).toString('hex');
  const out: BenchResult[] = [];
  let n = 0;
  const volume = async (): Promise<Volume> => Volume.create(new NodeDirNamespace(join(dir, `v${n++}`), { create: true }), { size });
  /** a primary volume, replicated (or not) to a fresh secondary over loopback TCP */
  const setup = async (mode: 'sync' | 'async' | 'none') => {
    const pv = await volume();
    if (mode === 'none') return { pv, close: async () => pv.close() };
    const sv = await volume();
    const sec = await Secondary.open(sv);
    const server = await listenReplicaTcp({ token, onLink: (l) => sec.accept(l as Link<ToPrimary>) });
    const session = await PrimarySession.open(pv, { name: 'bench', mode });
    await session.connect(await connectReplicaTcp<ToSecondary>(server.url, { token }));
    await session.synced();
    return {
      pv,
      session,
      close: async () => {
        await session.close();
        await sec.close();
        await server.close();
        await pv.close();
        await sv.close();
      },
    };
  };
  try {
    const chunk = new Uint8Array(MiB);
    randomFillSync(chunk);
    const sequential = (mode: 'sync' | 'async' | 'none') => async (): Promise<number> => {
      const s = await setup(mode);
      const t0 = performance.now();
      for (let off = 0; off < size; off += MiB) await s.pv.write(off, chunk);
      await s.pv.flush();
      const ms = performance.now() - t0;
      await s.close();
      return size / MiB / (ms / 1000);
    };
    const [asyncRate, plainA] = await runPairedRounds([sequential('async'), sequential('none')], rounds);
    out.push(pairedResult(REPLICATION_ROWS.asyncThroughput, asyncRate!, plainA!, 'MiB/s', 'the same writes without replication', 0.8, 'async acknowledges before the secondary has the write; the flush at the end is local'));
    const [syncRate, plainS] = await runPairedRounds([sequential('sync'), sequential('none')], rounds);
    out.push(pairedResult(REPLICATION_ROWS.syncThroughput, syncRate!, plainS!, 'MiB/s', 'the same writes without replication', undefined, 'sync: each write waits until the secondary has flushed it (group commit)'));

    // QD1 latency and the link's own round trip
    const small = new Uint8Array(4096);
    randomFillSync(small);
    const latency = async (mode: 'sync' | 'none'): Promise<number> => {
      const s = await setup(mode);
      const xs: number[] = [];
      for (let i = 0; i < latencyOps; i++) {
        const t0 = performance.now();
        await s.pv.write((i % (size / 4096)) * 4096, small);
        xs.push(performance.now() - t0);
      }
      await s.close();
      return median(xs) * 1000;
    };
    const rtt = async (): Promise<number> => {
      let echo: Link | undefined;
      const server = await listenReplicaTcp({
        token,
        onLink: (l) => {
          echo = l;
          l.listen({ message: (m) => l.send(m), close: () => {} });
        },
      });
      const link = await connectReplicaTcp(server.url, { token });
      const xs: number[] = [];
      let resolve!: () => void;
      link.listen({ message: () => resolve(), close: () => {} });
      for (let i = 0; i < latencyOps; i++) {
        const t0 = performance.now();
        await new Promise<void>((r) => {
          resolve = r;
          link.send({ t: 'x', i, data: small });
        });
        xs.push(performance.now() - t0);
      }
      link.close();
      echo?.close();
      await server.close();
      return median(xs) * 1000;
    };
    const syncUs = await latency('sync');
    const plainUs = await latency('none');
    const rttUs = await rtt();
    const bound = 2 * plainUs + rttUs;
    const r = result(REPLICATION_ROWS.syncLatency, syncUs, bound, 'µs (median, lower is better)', `2 × no replication (${plainUs.toFixed(0)} µs) + round trip (${rttUs.toFixed(0)} µs)`, undefined, 'sync includes the secondary flush before the acknowledgement');
    r.ratio = Math.round((bound / syncUs) * 1000) / 1000;
    r.target = 1;
    r.met = syncUs <= bound;
    out.push(r);

    // freeze: two groups of two sessions; the failing session's transport varies
    for (const transport of ['tcp', 'websocket', 'messageport', 'same-thread'] as const) {
      const times: number[] = [];
      for (let round = 0; round < (quick ? 2 : 5); round++) times.push(await freezeOnce(transport, token, dir, round));
      const ms = median(times);
      const fr = result(`${REPLICATION_ROWS.freeze} (failing session over ${transport})`, ms, 50, 'ms (median, lower is better)', "IBM's default coordination window");
      fr.ratio = Math.round((50 / ms) * 1000) / 1000;
      fr.target = 1;
      fr.met = ms <= 50;
      out.push(fr);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}

/** Milliseconds from a broken link to every session's freeze durable (role records written). */
async function freezeOnce(transport: 'tcp' | 'websocket' | 'messageport' | 'same-thread', token: string, dir: string, round: number): Promise<number> {
  const manager = new ReplicationManager();
  const closers: (() => Promise<void> | void)[] = [];
  const size = 16 * MiB;
  let broken: (() => void) | undefined;
  const sessions: PrimarySession[] = [];
  for (let i = 0; i < 4; i++) {
    const pv = await Volume.create(new NodeDirNamespace(join(dir, `f-${transport}-${round}-p${i}`), { create: true }), { size });
    const sv = await Volume.create(new NodeDirNamespace(join(dir, `f-${transport}-${round}-s${i}`), { create: true }), { size });
    const sec = await Secondary.open(sv);
    const s = await PrimarySession.open(pv, { name: `s${i}`, mode: 'sync' });
    manager.add(s, i < 2 ? 'a' : 'b');
    sessions.push(s);
    const kind = i === 0 ? transport : i % 2 === 0 ? 'tcp' : 'same-thread';
    let link: Link<ToSecondary>;
    if (kind === 'tcp') {
      const server = await listenReplicaTcp({ token, onLink: (l) => sec.accept(l as Link<ToPrimary>) });
      link = await connectReplicaTcp<ToSecondary>(server.url, { token });
      closers.push(() => server.close());
    } else if (kind === 'websocket') {
      const server = await listenReplicaWs({ token, onLink: (l) => sec.accept(l as Link<ToPrimary>) });
      link = await connectReplicaWs<ToSecondary>(server.url, { token });
      closers.push(() => server.close());
    } else if (kind === 'messageport') {
      const ch = new MessageChannel();
      sec.accept(portLink<ToPrimary>(ch.port2));
      link = portLink<ToSecondary>(ch.port1);
    } else {
      const [a, b] = localLinkPair<ToSecondary, ToPrimary>();
      sec.accept(b);
      link = a;
    }
    if (i === 0) {
      // the failure: the secondary's end goes away (its process died, its port closed)
      broken = () => void sec.close();
    }
    await s.connect(link);
    closers.push(async () => {
      await sec.close();
      await pv.close();
      await sv.close();
    });
  }
  await manager.synced();
  const frozen = new Promise<number>((resolve) => manager.on((e) => e.type === 'frozen' && resolve(performance.now())));
  const t0 = performance.now();
  broken!();
  const t1 = await frozen;
  await manager.close();
  for (const c of closers.reverse()) await c();
  return t1 - t0;
}
