/**
 * A read-only server whose connections are served by child processes (ServeNbdOptions.processes):
 * this process negotiates, then hands each socket over with what the client already sent. Runs the
 * built package (dist/: npm run build), since the children run its JavaScript.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { makeTestTls } from '../helpers/tls-certs.js';
import { KiB, RawClient, have, makeVolume, run, runOk, tempDir } from './nbd-helpers.js';

const DIST = fileURLToPath(new URL('../../../dist/interop/nbd/index.js', import.meta.url));
const built = existsSync(DIST) && existsSync(fileURLToPath(new URL('../../../dist/interop/nbd/process-worker.js', import.meta.url)));
type ServeNbd = typeof import('../../../src/interop/nbd/index.js').serveNbd;

/** GO for `name` and a READ pipelined in the same packet: the read arrives before the hand-over. */
async function goAndRead(port: number, name: string, offset: number, length: number): Promise<Buffer> {
  const c = await RawClient.connect(port);
  try {
    await c.hello();
    const n = Buffer.from(name);
    const go = Buffer.alloc(16 + 4 + n.length + 2);
    go.writeBigUInt64BE(0x49484156454f5054n, 0);
    go.writeUInt32BE(7, 8);
    go.writeUInt32BE(4 + n.length + 2, 12);
    go.writeUInt32BE(n.length, 16);
    n.copy(go, 20);
    const req = Buffer.alloc(28);
    req.writeUInt32BE(0x25609513, 0);
    req.writeUInt16BE(0, 6);
    req.writeBigUInt64BE(7n, 8);
    req.writeBigUInt64BE(BigInt(offset), 16);
    req.writeUInt32BE(length, 24);
    c.write(Buffer.concat([go, req]));
    for (;;) {
      const r = await c.optionReply();
      if (!r) throw new Error('closed during GO');
      if (r.type === 1) break;
      if (r.type & 0x80000000) throw new Error(`GO failed: ${r.type}`);
    }
    const reply = await c.simpleReply(20_000);
    expect(reply).toEqual({ error: 0, cookie: 7n });
    return (await c.read(length, 20_000))!;
  } finally {
    c.close();
  }
}

describe.skipIf(!built)('serve-nbd --read-only --processes', () => {
  const tmp = tempDir('stratadisk-nbd-proc-');
  afterAll(() => tmp.cleanup());

  it('child processes serve the live volume and snapshots; pipelined requests survive the hand-over; a bad client ends alone', async () => {
    const { serveNbd } = (await import(DIST)) as { serveNbd: ServeNbd };
    const dir = join(tmp.dir, 'vol');
    const { live, snap } = await makeVolume(dir);
    const server = await serveNbd({ dir }, { readOnly: true, processes: 2, port: 0, insecure: true });
    try {
      // Several connections, round robin over both children, pipelined right after GO.
      for (let i = 0; i < 4; i++) {
        const off = i * 1000 * KiB + 100;
        expect(Buffer.compare(await goAndRead(server.port, '', off, 300 * KiB), Buffer.from(live.subarray(off, off + 300 * KiB)))).toBe(0);
      }
      expect(Buffer.compare(await goAndRead(server.port, 's1', 0, 1024 * KiB), Buffer.from(snap.subarray(0, 1024 * KiB)))).toBe(0);

      // A client that breaks the protocol in a child loses only its own connection.
      const bad = await RawClient.connect(server.port);
      await bad.hello();
      expect('size' in (await bad.go(''))).toBe(true);
      bad.write(Buffer.alloc(28, 0xee));
      expect(await bad.closedByServer()).toBe(true);

      if (have('nbdcopy')) {
        const out = join(tmp.dir, 'live.raw');
        await runOk('nbdcopy', [server.uri, out]);
        expect(Buffer.compare(readFileSync(out), Buffer.from(live))).toBe(0);
      }
      if (have('qemu-img')) {
        const out = join(tmp.dir, 's1.raw');
        await runOk('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `${server.uri}s1`, out]);
        expect(Buffer.compare(readFileSync(out), Buffer.from(snap))).toBe(0);
      }
    } finally {
      await server.close();
    }
  });

  it.skipIf(!have('nbdinfo') || !have('nbdcopy'))('with TLS the children negotiate each connection themselves: X.509 and PSK clients are served, plain and silent ones refused', async () => {
    const { serveNbd } = (await import(DIST)) as { serveNbd: ServeNbd };
    const { readPskFile } = (await import(fileURLToPath(new URL('../../../dist/interop/nbd/tls.js', import.meta.url)))) as typeof import('../../../src/interop/nbd/tls.js');
    const dir = join(tmp.dir, 'vol-tls');
    const { live } = await makeVolume(dir);
    const t = makeTestTls(tmp.dir);
    const x509 = { cert: readFileSync(t.serverCert), key: readFileSync(t.serverKey), ca: readFileSync(t.caCert) };
    const server = await serveNbd({ dir }, { readOnly: true, processes: 2, tls: x509, handshakeTimeoutMs: 300 });
    const psk = await serveNbd({ dir }, { readOnly: true, processes: 1, tls: { psk: readPskFile(t.pskFile) } });
    try {
      const out = join(tmp.dir, 'tls.raw');
      await runOk('nbdcopy', [`nbds://localhost:${server.port}/?tls-certificates=${t.dir}`, out]);
      expect(Buffer.compare(readFileSync(out), Buffer.from(live))).toBe(0);
      expect((await run('nbdinfo', ['--size', `nbd://localhost:${server.port}/`])).code).not.toBe(0);
      const silent = await RawClient.connect(server);
      expect(await silent.closedByServer(120_000)).toBe(true);
      expect((await runOk('nbdinfo', ['--size', `nbds://${t.pskUser}@localhost:${psk.port}/?tls-psk-file=${t.pskFile}`])).trim()).toBe(String(live.length));
      const wrong = join(makeTestTls(tmp.dir).dir, 'keys.psk');
      expect((await run('nbdinfo', ['--size', `nbds://${t.pskUser}@localhost:${psk.port}/?tls-psk-file=${wrong}`])).code).not.toBe(0);
    } finally {
      await server.close();
      await psk.close();
    }
  });
});
