import { describe, expect, it } from 'vitest';
import { localLinkPair } from '../../../src/consistency/local.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { PrimarySession } from '../../../src/replication/primary.js';
import { Secondary } from '../../../src/replication/secondary.js';
import { ReplicationManager } from '../../../src/replication/manager.js';
import type { ToPrimary, ToSecondary } from '../../../src/replication/protocol.js';
import { demote, promote } from '../../../src/replication/role-change.js';
import { RoleRecord } from '../../../src/replication/roles.js';

const BS = 4096;
const SIZE = 256 * BS;

async function pair(mode: 'sync' | 'async' = 'sync') {
  const pns = new MemoryNamespace();
  const sns = new MemoryNamespace();
  const pv = await Volume.create(pns, { size: SIZE, blockSize: BS });
  const sv = await Volume.create(sns, { size: SIZE, blockSize: BS });
  const primary = await PrimarySession.open(pv, { name: 's1', mode });
  const secondary = await Secondary.open(sv);
  const connect = async () => {
    const [a, b] = localLinkPair<ToSecondary, ToPrimary>();
    secondary.accept(b);
    return a;
  };
  return { pv, sv, primary, secondary, connect, pns, sns };
}

function fill(seed: number, len: number): Uint8Array {
  const d = new Uint8Array(len);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    d[i] = x & 0xff;
  }
  return d;
}

async function same(a: Volume, b: Volume): Promise<boolean> {
  const x = await a.read(0, a.size);
  const y = await b.read(0, b.size);
  return Buffer.compare(Buffer.from(x), Buffer.from(y)) === 0;
}

describe('replication session (same thread)', () => {
  it('initial sync copies allocated blocks, then live writes stream (sync mode)', async () => {
    const { pv, sv, primary, connect } = await pair('sync');
    await pv.write(10 * BS, fill(1, 3 * BS));
    await pv.write(100 * BS + 17, fill(2, 5000));
    await primary.connect(await connect());
    await primary.synced();
    expect(await same(pv, sv)).toBe(true);
    await pv.write(50 * BS, fill(3, 2 * BS));
    await pv.writeZeroes(10 * BS, BS);
    await pv.flush();
    // sync mode: acknowledged means the secondary has it
    expect(await same(pv, sv)).toBe(true);
    expect(primary.status().state).toBe('replicating');
    await primary.close();
  });

  it('async mode catches up', async () => {
    const { pv, sv, primary, connect } = await pair('async');
    await primary.connect(await connect());
    await primary.synced();
    for (let i = 0; i < 50; i++) await pv.write(((i * 37) % 250) * BS, fill(i + 10, BS * 2));
    await pv.flush();
    for (let k = 0; k < 100 && primary.status().lagWrites > 0; k++) await new Promise((r) => setTimeout(r, 5));
    expect(primary.status().lagWrites).toBe(0);
    expect(await same(pv, sv)).toBe(true);
    await primary.close();
  });

  it('a lost link freezes; writes go on out of sync; resume resyncs only those', async () => {
    const { pv, sv, primary, secondary, connect } = await pair('sync');
    const m = new ReplicationManager();
    m.add(primary, 'g');
    await primary.connect(await connect());
    await primary.synced();
    await pv.write(0, fill(5, BS));
    await secondary.close(); // the link goes
    await new Promise((r) => setTimeout(r, 10));
    expect(primary.state).toBe('frozen');
    await pv.write(20 * BS, fill(6, BS * 3));
    expect(primary.status().outOfSyncBytes).toBe(3 * BS);
    const before = primary.sentBytes;
    await m.resume(() => connect());
    await m.synced();
    expect(primary.sentBytes - before).toBe(3 * BS);
    expect(await same(pv, sv)).toBe(true);
    await m.close();
  });

  it('a planned failback (nothing written on the old primary after it stopped) is no split brain', async () => {
    const { pv, sv, primary, secondary, connect, pns, sns } = await pair('sync');
    await pv.write(0, fill(11, 4 * BS));
    await primary.connect(await connect());
    await primary.synced();
    await primary.close();
    await secondary.close();
    // failover: B promoted and written; A demoted without a write since its session closed
    await promote(sv, await RoleRecord.open(sns), 'B');
    await demote(await RoleRecord.open(pns), 'A');
    await sv.write(8 * BS, fill(12, BS));
    const back = await Secondary.open(pv);
    const b = await PrimarySession.open(sv, { name: 'back' });
    const [l1, l2] = localLinkPair<ToSecondary, ToPrimary>();
    back.accept(l2);
    await b.connect(l1);
    await b.synced();
    expect(await same(pv, sv)).toBe(true);
    await b.close();
  });

  it('writes on the old primary after it stopped are split brain with the promoted secondary', async () => {
    const { pv, sv, primary, secondary, connect, pns, sns } = await pair('sync');
    await primary.connect(await connect());
    await primary.synced();
    await primary.close();
    await secondary.close();
    await pv.write(0, fill(13, BS)); // written outside replication
    await promote(sv, await RoleRecord.open(sns), 'B');
    await sv.write(8 * BS, fill(14, BS));
    // A opens a session again (the write above is seen), then is demoted and B pairs with it
    const again = await PrimarySession.open(pv, { name: 's1' });
    await again.close();
    await demote(await RoleRecord.open(pns), 'A');
    const back = await Secondary.open(pv);
    const b = await PrimarySession.open(sv, { name: 'back' });
    const [l1, l2] = localLinkPair<ToSecondary, ToPrimary>();
    back.accept(l2);
    await expect(b.connect(l1)).rejects.toMatchObject({ code: 'split-brain' });
    await b.close();
  });

  it('a primary refused as split brain leaves the secondary\'s role record as it was', async () => {
    const { pv, primary, secondary, connect, sns } = await pair('sync');
    await primary.connect(await connect());
    await primary.synced();
    await primary.close();
    await secondary.close();
    const before = (await RoleRecord.open(sns)).state;
    expect(before.peer).toBe(pv.manifest.uuid);
    // an unrelated primary (its own generations) tries the same secondary
    const other = await Volume.create(new MemoryNamespace(), { size: SIZE, blockSize: BS });
    const c = await PrimarySession.open(other, { name: 'other' });
    const sec = await Secondary.open(secondary.volume);
    const [l1, l2] = localLinkPair<ToSecondary, ToPrimary>();
    sec.accept(l2);
    await expect(c.connect(l1)).rejects.toMatchObject({ code: 'split-brain' });
    await sec.idle();
    expect((await RoleRecord.open(sns)).state).toEqual(before);
    await c.close();
  });
});
