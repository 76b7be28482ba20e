/**
 * The local-socket framing and the message validators are fed bytes from other processes:
 * round trips at every chunking, hostile lengths, and a seeded mutation fuzzer (2,000 cases in
 * `npm test`, 100,000 with STRATADISK_LONG=1). Every input ends in messages that validate, or
 * a `corrupt` error; nothing else is thrown and memory held stays bounded. Then the same over
 * a real Unix socket: a hostile client is cut off while a well-behaved member is unaffected.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameReader, MAX_FRAME } from '../../../src/consistency/framing.js';
import { GroupHost } from '../../../src/consistency/host.js';
import { connectGroup, listenGroup } from '../../../src/consistency/node-socket.js';
import { Participant } from '../../../src/consistency/participant.js';
import { parseToHost, parseToMember, type ToHost } from '../../../src/consistency/protocol.js';
import { isStrataError } from '../../../src/errors.js';
import { MemoryNamespace } from '../../../src/store/memory.js';
import { Volume } from '../../../src/volume/volume.js';
import { Rng } from '../helpers/random.js';

const long = process.env.STRATADISK_LONG === '1';

function sample(rng: Rng): object[] {
  return [
    { t: 'hello', v: 1, name: 'writer-' + rng.int(100) },
    { t: 'frozen', attempt: rng.int(1000) },
    { t: 'veto', attempt: 3, reason: 'busy ü ☃' },
    { t: 'write', req: rng.int(1e6), vol: 'a', offset: rng.int(1 << 20), data: rng.bytes(rng.int(5000)) },
    { t: 'read', req: 9, vol: 'b', offset: 0, length: 4096 },
    { t: 'done', req: 4, data: rng.bytes(100) },
    { t: 'done', req: 5, snapshot: { id: 'cg-1', volumes: ['a', 'b'], participants: 3, frozenMs: 12 } },
    { t: 'beat' },
  ];
}

function chunked(bytes: Uint8Array, rng: Rng): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + rng.int(Math.min(bytes.length - at, rng.pick([1, 3, 8, 100, 70000])));
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Validate as either direction; true when it is a valid protocol message. */
function validates(m: unknown): boolean {
  for (const parse of [parseToHost, parseToMember]) {
    try {
      parse(m);
      return true;
    } catch (e) {
      if (!isStrataError(e, 'corrupt')) throw e;
    }
  }
  return false;
}

describe('frames', () => {
  it('round-trip messages, bytes included, at any chunking', () => {
    const rng = new Rng(1);
    for (let round = 0; round < 20; round++) {
      const msgs = sample(rng);
      const stream = concat(msgs.map((m) => encodeFrame(m)));
      const reader = new FrameReader();
      const got: unknown[] = [];
      for (const c of chunked(stream, rng)) got.push(...reader.push(c));
      expect(got).toEqual(msgs);
      expect(reader.pending).toBe(0);
      for (const g of got) expect(validates(g)).toBe(true);
    }
  });

  it('refuses hostile lengths before buffering them', () => {
    const huge = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    expect(() => new FrameReader().push(huge)).toThrow(expect.objectContaining({ code: 'corrupt' }));
    const jsonTooLong = new Uint8Array(12);
    new DataView(jsonTooLong.buffer).setUint32(0, 8);
    new DataView(jsonTooLong.buffer).setUint32(4, 0xfffffff0);
    expect(() => new FrameReader().push(jsonTooLong)).toThrow(/JSON length/);
    // A length just under the bound is accepted and waits: nothing is allocated for it up front.
    const r = new FrameReader();
    const head = new Uint8Array(4);
    new DataView(head.buffer).setUint32(0, MAX_FRAME);
    expect(r.push(head)).toEqual([]);
    expect(r.pending).toBe(4);
    // After an error the reader stays failed.
    const bad = new FrameReader();
    expect(() => bad.push(huge)).toThrow();
    expect(() => bad.push(encodeFrame({ t: 'beat' }))).toThrow(/frame length/);
    // A payload without the flag, or a flag without a JSON object, is corrupt.
    const f = encodeFrame({ t: 'write', req: 1, vol: 'a', offset: 0, data: new Uint8Array(3) });
    const text = new TextDecoder().decode(f.subarray(8, 8 + new DataView(f.buffer).getUint32(4)));
    expect(text).toContain('"bin":1');
    expect(() => encodeFrame({ t: 'x', data: new Uint8Array((32 << 20) + 1) })).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
  });

  it(`survive a mutation fuzzer (${long ? '100,000' : '2,000'} cases): messages that validate, or corrupt`, () => {
    const rng = new Rng(0xc0ffee);
    const cases = long ? 100_000 : 2_000;
    let errors = 0;
    let parsed = 0;
    for (let i = 0; i < cases; i++) {
      const stream = concat(sample(rng).map((m) => encodeFrame(m)));
      const mutated = stream.slice(0, rng.int(stream.length + 1));
      const flips = 1 + rng.int(8);
      for (let k = 0; k < flips && mutated.length > 0; k++) {
        const at = rng.int(mutated.length);
        mutated[at] = rng.pick([0, 0xff, 0x7f, 0x22, 0x7b, rng.int(256)]);
      }
      if (rng.int(4) === 0) mutated.set(rng.bytes(Math.min(16, mutated.length)), rng.int(Math.max(1, mutated.length - 16)));
      const reader = new FrameReader();
      try {
        for (const c of chunked(mutated, rng)) {
          for (const m of reader.push(c)) {
            parsed++;
            validates(m);
          }
          if (reader.pending > 8 + MAX_FRAME + mutated.length) throw new Error(`reader holds ${reader.pending} bytes`);
        }
      } catch (e) {
        if (!isStrataError(e, 'corrupt')) throw e;
        errors++;
      }
    }
    expect(errors).toBeGreaterThan(0);
    expect(parsed).toBeGreaterThan(0);
  });
});

describe('local socket', () => {
  it('serves members; a hostile client is cut off, the others are unaffected', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stratadisk-cg-'));
    const path = join(dir, 'group.sock');
    const a = await Volume.create(new MemoryNamespace(), { size: 1 << 20, blockSize: 4096 });
    const host = new GroupHost({ a });
    const server = await listenGroup(host, path);
    try {
      const p = new Participant(await connectGroup<ToHost>(path), { name: 'good' });
      await p.ready;
      await p.volume('a').write(8192, new Uint8Array(4096).fill(7));
      expect((await p.volume('a').read(8192, 4))[0]).toBe(7);

      for (const garbage of [new Uint8Array([0xff, 0xff, 0xff, 0xff]), concat([encodeFrame({ t: 'hello', v: 1, name: 'x' }), new Uint8Array([0, 0, 0, 9, 0, 0, 0, 5, 0x7b, 0x7b, 0x7b, 0x7b, 0x7b])])]) {
        const sock = createConnection(path);
        await new Promise<void>((r) => sock.once('connect', () => r()));
        const closed = new Promise<void>((r) => sock.once('close', () => r()));
        sock.on('error', () => {});
        sock.resume(); // read (and drop) the host's authentication challenge, so its end arrives
        sock.write(garbage);
        await closed;
      }
      const snap = await p.requestSnapshot('after-garbage');
      expect(snap.participants).toBe(1);
      expect(host.participants).toEqual(['good']);
      // A member process that goes away is dropped at once.
      p.close();
      await new Promise((r) => setTimeout(r, 50));
      expect(host.participants).toEqual([]);
    } finally {
      host.close();
      await new Promise((r) => server.close(() => r(undefined)));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
