/**
 * Fuzz/corruption test of the store server's request parsers (src/store/store-server.ts): random
 * and mutated bodies must parse to records that lie inside the body, or be refused with a
 * StrataError; sent to a live server they get a 2xx or 4xx answer, never crash it, and never
 * touch anything outside its directory. A seeded slice runs by default; STRATADISK_LONG=1 runs more.
 */
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../../src/errors.js';
import { RemoteNamespace } from '../../../src/store/remote.js';
import { parseReadBody, parseWriteBody, serveStore, type StoreServer } from '../../../src/store/store-server.js';
import { Rng } from '../helpers/random.js';

const LONG = process.env.STRATADISK_LONG === '1';
const CASES = LONG ? 20_000 : 1_500;

function validWrite(rng: Rng): Uint8Array<ArrayBuffer> {
  const parts: number[] = [];
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) {
    const len = rng.int(300);
    const off = rng.int(1 << 16);
    parts.push(off & 0xff, (off >> 8) & 0xff, 0, 0, 0, 0, 0, 0, len & 0xff, len >> 8, 0, 0);
    for (let j = 0; j < len; j++) parts.push(rng.int(256));
  }
  return Uint8Array.from(parts);
}

/** Flip bytes, cut, extend or splice in big numbers. */
function mutate(body: Uint8Array, rng: Rng): Uint8Array<ArrayBuffer> {
  const b = body.slice();
  const kind = rng.int(4);
  if (kind === 0) for (let i = 0; i < 1 + rng.int(4); i++) if (b.length) b[rng.int(b.length)] = rng.int(256);
  if (kind === 1) return b.subarray(0, rng.int(b.length + 1));
  if (kind === 2) return Uint8Array.from([...b, ...Array.from({ length: rng.int(20) }, () => rng.int(256))]);
  if (kind === 3 && b.length >= 12) {
    const at = rng.int(b.length - 3);
    b.set([0xff, 0xff, 0xff, rng.int(256)], at);
  }
  return b;
}

describe('store server request parsers (fuzz)', () => {
  it(`parseWriteBody: ${CASES} random and mutated bodies parse inside the body or are refused`, () => {
    const rng = new Rng(101);
    let refused = 0;
    for (let i = 0; i < CASES; i++) {
      const body = i % 3 === 0 ? Uint8Array.from({ length: rng.int(64) }, () => rng.int(256)) : mutate(validWrite(rng), rng);
      try {
        const recs = parseWriteBody(body);
        let bytes = 0;
        for (const r of recs) {
          expect(Number.isSafeInteger(r.offset) && r.offset >= 0).toBe(true);
          expect(r.data.buffer).toBe(body.buffer); // views, never copies sized by the input
          bytes += 12 + r.data.length;
        }
        expect(bytes).toBe(body.length);
      } catch (e) {
        expect(isStrataError(e, 'invalid-argument')).toBe(true);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });

  it(`parseReadBody: ${CASES} random bodies give bounded ranges or are refused`, () => {
    const rng = new Rng(102);
    for (let i = 0; i < CASES; i++) {
      const body = Uint8Array.from({ length: rng.int(8) === 0 ? rng.int(50) : 12 * rng.int(6) }, () => (rng.next() < 0.7 ? rng.int(4) : rng.int(256)));
      try {
        const ranges = parseReadBody(body, 1 << 20);
        expect(ranges.reduce((n, r) => n + r.length, 0)).toBeLessThanOrEqual(1 << 20);
      } catch (e) {
        expect(isStrataError(e, 'invalid-argument') || isStrataError(e, 'out-of-range')).toBe(true);
      }
    }
    expect(() => parseReadBody(new Uint8Array(12 * 65537), 1 << 30)).toThrow(expect.objectContaining({ code: 'invalid-argument' }));
  });
});

describe('store server under corrupt requests', () => {
  let root: string;
  let server: StoreServer;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stratadisk-fuzz-'));
    await mkdtemp(join(root, 'inner-'));
    server = await serveStore(join(root, readdirSync(root)[0]!), { maxBodyBytes: 1 << 20 });
  });
  afterAll(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('answers 2xx/4xx to mutated requests, keeps serving, and writes only inside its directory', async () => {
    const ns = new RemoteNamespace(`${server.url}#token=${server.token}`);
    await (await ns.open('disk', { create: true })).close();
    const rng = new Rng(103);
    const ops = ['write', 'read', 'open', 'truncate', 'flush', 'list', 'exists', 'wat', ''];
    const names = ['disk', 'd2', '..', '', 'a%2fb', '.x', 'x'.repeat(200)];
    const n = LONG ? 2000 : 150;
    for (let i = 0; i < n; i++) {
      const op = rng.pick(ops);
      const body = op === 'write' ? mutate(validWrite(rng), rng) : Uint8Array.from({ length: rng.int(40) }, () => rng.int(256));
      const q = `op=${op}&name=${rng.pick(names)}&size=${rng.pick(['-1', '1e30', 'abc', '100', '0.5'])}&create=${rng.int(2)}`;
      const res = await fetch(`${server.url}${rng.pick(['', 'sub', '..%2f', '%00'])}?${q}`, { method: 'POST', headers: { authorization: `Bearer ${server.token}` }, body });
      await res.arrayBuffer();
      expect(res.status, `${op} ${q}`).toBeLessThan(500);
    }
    // still serving, and nothing appeared next to the served directory
    expect(await ns.list()).toContain('disk');
    expect(readdirSync(root)).toHaveLength(1);
  });
});
