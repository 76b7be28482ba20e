/**
 * The NBD server spoken to by hand: option haggling details, error replies, and hostile or
 * broken clients, each of which must end only its own connection while a well-behaved client
 * connected at the same time keeps working and the volume stays check-clean.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveNbd, type NbdServer } from '../../../src/interop/nbd/index.js';
import { Rng } from '../helpers/random.js';
import { KiB, makeVolume, MiB, RawClient, tempDir } from './nbd-helpers.js';

const OPT_ABORT = 2;
const OPT_LIST = 3;
const OPT_STRUCTURED = 8;
const OPT_SET_META = 10;
const REP_ACK = 1;
const REP_SERVER = 2;
const REP_META = 4;
const ERR_UNSUP = 0x80000001;
const ERR_INVALID = 0x80000003;
const ERR_UNKNOWN = 0x80000006;
const READ = 0;
const WRITE = 1;
const DISC = 2;
const FLUSH = 3;
const BLOCK_STATUS = 7;
const EPERM = 1;
const EINVAL = 22;
const ENOSPC = 28;

describe('NBD protocol by hand', () => {
  const tmp = tempDir();
  const volDir = join(tmp.dir, 'vol');
  let expected: { live: Uint8Array; snap: Uint8Array };
  let server: NbdServer;
  /** A client connected for the whole suite: it must keep working whatever the others do. */
  let steady: RawClient;
  let cookie = 100n;

  const steadyRead = async (offset: number, length: number) => {
    const c = ++cookie;
    steady.request(READ, offset, length, c);
    const r = await steady.simpleReply();
    expect(r).toEqual({ error: 0, cookie: c });
    const data = await steady.read(length);
    expect(Buffer.compare(data!, Buffer.from(expected.live.subarray(offset, offset + length)))).toBe(0);
  };

  beforeAll(async () => {
    expected = await makeVolume(volDir);
    server = await serveNbd({ dir: volDir });
    steady = await RawClient.connect(server);
    await steady.hello();
    const g = await steady.go('');
    expect(g).toEqual({ size: 8 * MiB, flags: expect.any(Number) });
  });
  afterAll(async () => {
    steady?.close();
    await server?.close();
    tmp.cleanup();
  });

  const fresh = async () => {
    const c = await RawClient.connect(server);
    await c.hello();
    return c;
  };

  it('greets with fixed newstyle + no zeroes; LIST; unknown option → ERR_UNSUP; ABORT → ACK', async () => {
    const c = await RawClient.connect(server);
    expect(await c.hello()).toBe(3);
    c.option(OPT_LIST);
    const names: string[] = [];
    for (;;) {
      const r = (await c.optionReply())!;
      if (r.type === REP_ACK) break;
      expect(r.type).toBe(REP_SERVER);
      names.push(r.data.toString('utf8', 4, 4 + r.data.readUInt32BE(0)));
    }
    expect(names).toEqual(['', 'vol', 's1']);
    c.option(OPT_LIST, new Uint8Array(3));
    expect((await c.optionReply())!.type).toBe(ERR_INVALID);
    c.option(999);
    expect((await c.optionReply())!.type).toBe(ERR_UNSUP);
    c.option(5); // STARTTLS: no TLS here
    expect((await c.optionReply())!.type).toBe(ERR_UNSUP);
    expect(await c.go('no-such-export')).toEqual({ error: ERR_UNKNOWN });
    c.option(OPT_ABORT);
    expect((await c.optionReply())!.type).toBe(REP_ACK);
    c.close();
    await steadyRead(0, 4096);
  });

  it('meta contexts need structured replies; base:allocation is selected and answered', async () => {
    const c = await fresh();
    const meta = (name: string, queries: string[]) => {
      const parts = [Buffer.alloc(4), Buffer.from(name), Buffer.alloc(4)];
      parts[0]!.writeUInt32BE(Buffer.byteLength(name));
      parts[2]!.writeUInt32BE(queries.length);
      for (const q of queries) {
        const l = Buffer.alloc(4);
        l.writeUInt32BE(Buffer.byteLength(q));
        parts.push(l, Buffer.from(q));
      }
      return Buffer.concat(parts);
    };
    c.option(OPT_SET_META, meta('', ['base:allocation']));
    expect((await c.optionReply())!.type).toBe(ERR_INVALID);
    c.option(OPT_STRUCTURED);
    expect((await c.optionReply())!.type).toBe(REP_ACK);
    // A query length running past the payload is invalid.
    const bad = meta('', ['base:allocation']);
    bad.writeUInt32BE(1000, bad.length - 'base:allocation'.length - 4);
    c.option(OPT_SET_META, bad);
    expect((await c.optionReply())!.type).toBe(ERR_INVALID);
    c.option(OPT_SET_META, meta('', ['x-other:thing', 'base:allocation']));
    const r = (await c.optionReply())!;
    expect(r.type).toBe(REP_META);
    const id = r.data.readUInt32BE(0);
    expect(r.data.toString('utf8', 4)).toBe('base:allocation');
    expect((await c.optionReply())!.type).toBe(REP_ACK);
    expect(await c.go('')).toMatchObject({ size: 8 * MiB });
    // Block status of the first MiB: data, zero (written zeros), data.
    c.request(BLOCK_STATUS, 0, 1 * MiB, 7n);
    const h = (await c.read(20))!;
    expect(h.readUInt32BE(0)).toBe(0x668e33ef);
    expect(h.readUInt16BE(6)).toBe(5);
    const p = (await c.read(h.readUInt32BE(16)))!;
    expect(p.readUInt32BE(0)).toBe(id);
    const desc: [number, number][] = [];
    for (let at = 4; at < p.length; at += 8) desc.push([p.readUInt32BE(at), p.readUInt32BE(at + 4)]);
    expect(desc).toEqual([
      [256 * KiB, 0],
      [256 * KiB, 3],
      [512 * KiB, 0],
    ]);
    c.close();
  });

  it('errors: read past the end → EINVAL, write past the end → ENOSPC, huge read → EINVAL; the connection survives', async () => {
    const c = await fresh();
    await c.go('');
    c.request(READ, 8 * MiB - 10, 20, 1n);
    expect(await c.simpleReply()).toEqual({ error: EINVAL, cookie: 1n });
    c.request(READ, 2 ** 52, 1, 2n);
    expect(await c.simpleReply()).toEqual({ error: EINVAL, cookie: 2n });
    c.request(WRITE, 8 * MiB - 2, 4, 3n, 0, new Uint8Array(4));
    expect(await c.simpleReply()).toEqual({ error: ENOSPC, cookie: 3n });
    c.request(READ, 0, 64 * MiB, 4n);
    expect(await c.simpleReply()).toEqual({ error: EINVAL, cookie: 4n });
    c.request(BLOCK_STATUS, 0, 4096, 5n); // no meta context negotiated
    expect(await c.simpleReply()).toEqual({ error: EINVAL, cookie: 5n });
    c.request(42, 0, 0, 6n);
    expect(await c.simpleReply()).toEqual({ error: EINVAL, cookie: 6n });
    c.request(READ, 4096, 16, 7n);
    expect(await c.simpleReply()).toEqual({ error: 0, cookie: 7n });
    expect(Buffer.compare((await c.read(16))!, Buffer.from(expected.live.subarray(4096, 4112)))).toBe(0);
    c.request(FLUSH, 0, 0, 8n);
    expect(await c.simpleReply()).toEqual({ error: 0, cookie: 8n });
    c.request(DISC, 0, 0, 9n);
    expect(await c.closedByServer()).toBe(true);
  });

  it('a snapshot export refuses writes with EPERM', async () => {
    const c = await fresh();
    const g = await c.go('s1');
    expect('flags' in g && (g.flags & 2) !== 0).toBe(true);
    c.request(WRITE, 0, 512, 1n, 0, new Uint8Array(512).fill(9));
    expect(await c.simpleReply()).toEqual({ error: EPERM, cookie: 1n });
    c.request(6, 0, 4096, 2n); // WRITE_ZEROES
    expect(await c.simpleReply()).toEqual({ error: EPERM, cookie: 2n });
    c.request(READ, 0, 512, 3n);
    expect(await c.simpleReply()).toEqual({ error: 0, cookie: 3n });
    expect(Buffer.compare((await c.read(512))!, Buffer.from(expected.snap.subarray(0, 512)))).toBe(0);
    c.close();
  });

  it('pipelined requests are all answered, each with its own cookie', async () => {
    const c = await fresh();
    await c.go('');
    const n = 40;
    for (let i = 0; i < n; i++) c.request(READ, i * 64 * KiB, 8 * KiB, BigInt(1000 + i));
    const seen = new Set<bigint>();
    for (let i = 0; i < n; i++) {
      const r = (await c.simpleReply())!;
      expect(r.error).toBe(0);
      const k = Number(r.cookie) - 1000;
      const data = (await c.read(8 * KiB))!;
      expect(Buffer.compare(data, Buffer.from(expected.live.subarray(k * 64 * KiB, k * 64 * KiB + 8 * KiB)))).toBe(0);
      seen.add(r.cookie);
    }
    expect(seen.size).toBe(n);
    c.close();
  });

  it('a read pipelined behind writes, and a read on another connection after their replies, see the new bytes', async () => {
    // Reads may be answered at once, without waiting for the event loop (readIntoNow); one that
    // arrives behind a write must still wait for it.
    const a = await fresh();
    await a.go('');
    const b = await fresh();
    await b.go('');
    const rng = new Rng(99);
    const at = 5 * MiB;
    for (let round = 0; round < 6; round++) {
      const offset = at + round * 3 * KiB; // unaligned: each write copies a block up first
      const len = 128 * KiB + round * 1000;
      const data = rng.bytes(len);
      a.request(WRITE, offset, len, 1n, 0, data);
      a.request(READ, offset, len, 2n);
      // Replies come in completion order: the read's carries its data right behind it.
      const cookies: bigint[] = [];
      for (let k = 0; k < 2; k++) {
        const r = (await a.simpleReply())!;
        expect(r.error).toBe(0);
        cookies.push(r.cookie);
        if (r.cookie === 2n) expect(Buffer.compare((await a.read(len))!, Buffer.from(data))).toBe(0);
      }
      expect(cookies.sort()).toEqual([1n, 2n]);
      b.request(READ, offset, len, 3n);
      expect(await b.simpleReply()).toEqual({ error: 0, cookie: 3n });
      expect(Buffer.compare((await b.read(len))!, Buffer.from(data))).toBe(0);
      expected.live.set(data, offset);
    }
    a.close();
    b.close();
  });

  const hostile: [string, (c: RawClient) => Promise<void>][] = [
    ['bad magic in the handshake', async (c) => {
      await c.read(18);
      c.write(Buffer.from([0, 0, 0, 3]));
      c.write(Buffer.from('NOTMAGIC\0\0\0\x07\0\0\0\0'));
    }],
    ['unknown client flags', async (c) => {
      await c.read(18);
      c.write(Buffer.from([0xff, 0, 0, 3]));
    }],
    ['an option length of 0xffffffff', async (c) => {
      await c.hello();
      const h = Buffer.alloc(16);
      h.writeBigUInt64BE(0x49484156454f5054n, 0);
      h.writeUInt32BE(7, 8);
      h.writeUInt32BE(0xffffffff, 12);
      c.write(h);
    }],
    ['EXPORT_NAME of an unknown export', async (c) => {
      await c.hello();
      c.option(1, Buffer.from('nope'));
    }],
    ['a request with bad magic', async (c) => {
      await c.hello();
      await c.go('');
      c.write(Buffer.alloc(28, 0xee));
    }],
    ['a write longer than the bound', async (c) => {
      await c.hello();
      await c.go('');
      c.request(WRITE, 0, 0xffffffff, 1n);
    }],
    ['a truncated request, then the client vanishes', async (c) => {
      await c.hello();
      await c.go('');
      c.write(Buffer.alloc(10));
      c.socket.end();
    }],
    ['a truncated write payload, then the client vanishes', async (c) => {
      await c.hello();
      await c.go('');
      c.request(WRITE, 0, 4096, 1n, 0, new Uint8Array(100));
      c.socket.end();
    }],
  ];
  for (const [what, act] of hostile) {
    it(`${what}: that connection closes, others keep working`, async () => {
      const c = await RawClient.connect(server);
      await act(c);
      expect(await c.closedByServer()).toBe(true);
      await steadyRead(3 * MiB, 64 * KiB);
    });
  }

  it('a seeded fuzz of random byte streams never harms other clients or the volume', async () => {
    const rng = new Rng(2024);
    const cases = 300;
    for (let i = 0; i < cases; i += 10) {
      // Ten hostile clients at a time; each sends garbage (sometimes after a valid prefix).
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const c = await RawClient.connect(server);
          const mode = rng.int(3);
          if (mode >= 1) await c.hello();
          if (mode === 2) await c.go(rng.pick(['', 's1']));
          const junk = rng.bytes(rng.range(1, 600));
          // Sometimes a plausible header with random fields, so the parsers go deeper.
          if (rng.int(2) === 0 && mode === 2) {
            junk[0] = 0x25; junk[1] = 0x60; junk[2] = 0x95; junk[3] = 0x13;
          }
          if (rng.int(2) === 0 && mode === 1 && junk.length >= 16) Buffer.from(junk.buffer).writeBigUInt64BE(0x49484156454f5054n, 0);
          c.write(junk);
          // Either the server closes it, or it is waiting for more bytes: we hang up.
          await c.closedByServer(100);
          c.close();
        }),
      );
      await steadyRead(rng.int(120) * 64 * KiB, 4 * KiB);
    }
    // Fuzzed writes could have hit the live export; the volume must still be consistent.
    const report = await server.volume.check();
    expect(report.ok).toBe(true);
  });
});
