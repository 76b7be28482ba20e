import { describe, expect, it } from 'vitest';
import { localLinkPair } from '../../../src/consistency/local.js';
import type { Link } from '../../../src/consistency/link.js';
import { MemoryStore } from '../../../src/store/memory.js';
import { MAX_IO, MAX_SEGMENTS_PER_REQUEST, PROTOCOL, parseReply, parseRequest } from '../../../src/resync/protocol.js';
import { remoteSide, serveResyncSide } from '../../../src/resync/remote.js';
import { StoreSide } from '../../../src/resync/side.js';
import { loadKernels } from '../../../src/wasm/index.js';

/** Every message is untrusted: malformed or hostile ones are refused, bounded, never crash either end. */
const SEG = 64 * 1024;

function collect(link: Link): { msgs: unknown[]; closed: string[] } {
  const got = { msgs: [] as unknown[], closed: [] as string[] };
  link.listen({ message: (m) => got.msgs.push(m), close: (r) => got.closed.push(r) });
  return got;
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe('resync protocol', () => {
  it('parseRequest refuses malformed and oversized requests', () => {
    const bad: unknown[] = [
      null,
      42,
      'hello',
      [],
      { t: 'known', id: -1, first: 0, count: 1 },
      { t: 'known', id: 1.5, first: 0, count: 1 },
      { t: 'known', id: 1, first: 0, count: MAX_SEGMENTS_PER_REQUEST + 1 },
      { t: 'known', id: 1, first: -3, count: 1 },
      { t: 'read', id: 1, offset: 0, length: MAX_IO + 1 },
      { t: 'read', id: 1, offset: 2 ** 60, length: 1 },
      { t: 'write', id: 1, offset: 0, data: 'abc' },
      { t: 'hash', id: 1, data: new Uint8Array(5) },
      { t: 'hash', id: 1, data: new Uint8Array(MAX_SEGMENTS_PER_REQUEST * 4 + 4) },
      { t: 'nope', id: 1 },
      { t: 'hello', id: 1, protocol: 'x'.repeat(100) },
    ];
    for (const m of bad) expect(() => parseRequest(m), JSON.stringify(m)).toThrow(expect.objectContaining({ code: 'corrupt' }));
  });

  it('parseReply refuses malformed replies and maps unknown error codes to io', () => {
    expect(() => parseReply({ t: 'info', id: 0, size: 10, segmentSize: 1000, writable: true, identity: 'x', label: 'y' })).toThrow();
    expect(() => parseReply({ t: 'info', id: 0, size: -1, segmentSize: 4096, writable: true, identity: 'x', label: 'y' })).toThrow();
    expect(() => parseReply({ t: 'data', id: 1, data: new Uint8Array(MAX_IO + 1) })).toThrow();
    expect(parseReply({ t: 'error', id: 1, code: 'rm -rf', message: 'm' })).toMatchObject({ code: 'io' });
  });

  it('the server answers bad requests with an error or closes; out-of-range requests get out-of-range', async () => {
    await loadKernels();
    const side = new StoreSide(new MemoryStore(new Uint8Array(SEG * 4)), 'mem', 'mem', SEG);
    const [client, server] = localLinkPair();
    serveResyncSide(server, side, { writable: false });
    const got = collect(client);
    client.send({ t: 'hello', id: 0, protocol: 'other/9' });
    client.send({ t: 'known', id: 1, first: 3, count: 2 });
    client.send({ t: 'read', id: 2, offset: SEG * 4 - 1, length: 2 });
    client.send({ t: 'hash', id: 3, data: new Uint8Array([1, 0, 0, 0, 1, 0, 0, 0]) });
    client.send({ t: 'write', id: 4, offset: 0, data: new Uint8Array(1) });
    client.send({ t: 'hash', id: 5, data: new Uint8Array([9, 0, 0, 0]) });
    for (let i = 0; i < 20; i++) await tick();
    const codes = got.msgs.map((m) => (m as { id: number; code?: string }).code);
    expect(codes).toEqual(['unsupported', 'out-of-range', 'out-of-range', 'corrupt', 'read-only', 'out-of-range']);
    // garbage: an error for its id, then the server closes the link
    client.send({ t: 'known', id: 6, first: 0, count: 2 ** 40 });
    for (let i = 0; i < 10; i++) await tick();
    expect(got.msgs.at(-1)).toMatchObject({ t: 'error', id: 6, code: 'corrupt' });
    expect(got.closed.length).toBe(1);
  });

  it('the client refuses a hostile server: wrong amounts, unknown ids, garbage; pending calls fail with io', async () => {
    await loadKernels();
    const hostile = async (answer: (req: { id: number; t: string }, send: (m: unknown) => void) => void): Promise<unknown> => {
      const [client, server] = localLinkPair();
      server.listen({
        message: (m) => answer(m as { id: number; t: string }, (x) => server.send(x)),
        close: () => {},
      });
      const r = await remoteSide(client).catch((e: unknown) => e as Error);
      if (r instanceof Error) return r;
      return r.known(0, 4).catch((e: unknown) => e);
    };
    const info = (id: number) => ({ t: 'info', id, size: SEG * 4, segmentSize: SEG, writable: true, identity: 'h', label: 'h' });
    // a known() reply of the wrong length
    expect(await hostile((q, send) => send(q.t === 'hello' ? info(q.id) : { t: 'data', id: q.id, data: new Uint8Array(3) }))).toMatchObject({ code: 'corrupt' });
    // an answer to a request never made
    expect(await hostile((q, send) => send(q.t === 'hello' ? info(q.id) : { t: 'ok', id: 999 }))).toMatchObject({ code: 'io' });
    // garbage instead of an answer
    expect(await hostile((q, send) => send(q.t === 'hello' ? info(q.id) : 'garbage'))).toMatchObject({ code: 'io' });
    // a bad hello
    expect(await hostile((q, send) => send({ ...info(q.id), segmentSize: 3 }))).toMatchObject({ code: 'io' });
  });

  it('the other end going away fails what is pending', async () => {
    await loadKernels();
    const [client, server] = localLinkPair();
    server.listen({
      message: (m) => {
        const q = m as { t: string; id: number };
        if (q.t === 'hello') server.send({ t: 'info', id: q.id, size: SEG, segmentSize: SEG, writable: true, identity: 'x', label: 'x' });
        else server.close();
      },
      close: () => {},
    });
    const r = await remoteSide(client);
    await expect(r.read(0, 10)).rejects.toMatchObject({ code: 'io' });
    await expect(r.flush()).rejects.toMatchObject({ code: 'io' });
    expect(PROTOCOL).toMatch(/^stratadisk-resync\//);
  });
});
