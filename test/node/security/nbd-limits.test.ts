/**
 * Bounds on what NBD clients may hold (issue 13, item 7): a client that connects and says
 * nothing is closed after the handshake timeout, an idle connection after the idle timeout, and
 * connections beyond the cap are closed at once. Small configured timeouts; each test waits for
 * the close itself (no timing threshold).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveNbd, type NbdServer } from '../../../src/interop/nbd/index.js';
import { makeVolume, RawClient, tempDir } from '../interop/nbd-helpers.js';

/** Long enough to mean "never" for a test: the server closes well before, or the test fails. */
const FOREVER = 120_000;

const tmp = tempDir('sd-nbd-limits-');
const volDir = join(tmp.dir, 'vol');
beforeAll(async () => {
  await makeVolume(volDir);
});
afterAll(() => tmp.cleanup());

async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setTimeout(r, 10));
}

describe('handshake timeout', () => {
  let server: NbdServer;
  afterAll(async () => {
    await server?.close();
  });

  it('a client that connects and says nothing is closed; so is one that stops after the greeting', async () => {
    const refused: Error[] = [];
    server = await serveNbd({ dir: volDir }, { readOnly: true, handshakeTimeoutMs: 200, onConnectionError: (e) => refused.push(e) });
    const silent = await RawClient.connect(server);
    const afterHello = await RawClient.connect(server);
    await afterHello.hello();
    expect(await silent.closedByServer(FOREVER)).toBe(true);
    expect(await afterHello.closedByServer(FOREVER)).toBe(true);
    await until(() => server.connections === 0);
    // one that negotiates in time is served, and stays past the handshake limit
    const good = await RawClient.connect(server);
    await good.hello();
    expect('size' in (await good.go(''))).toBe(true);
    await new Promise((r) => setTimeout(r, 400));
    good.request(0, 0, 512);
    expect((await good.simpleReply(FOREVER))?.error).toBe(0);
    good.close();
  });

  it('covers the TLS handshake: STARTTLS and then silence is closed', async () => {
    const s = await serveNbd({ dir: volDir }, { readOnly: true, handshakeTimeoutMs: 200, tls: { psk: new Map([['u', Buffer.alloc(32, 7)]]) } });
    try {
      const c = await RawClient.connect(s);
      await c.hello();
      c.option(5);
      expect((await c.optionReply())!.type).toBe(1);
      // no ClientHello follows
      expect(await c.closedByServer(FOREVER)).toBe(true);
    } finally {
      await s.close();
    }
  });
});

describe('idle timeout', () => {
  it('an idle connection is closed; one that keeps asking is not; the default is none', async () => {
    const s = await serveNbd({ dir: volDir }, { readOnly: true, idleTimeoutMs: 300 });
    const d = await serveNbd({ dir: volDir }, { readOnly: true, handshakeTimeoutMs: 100 });
    try {
      const idle = await RawClient.connect(s);
      await idle.hello();
      expect('size' in (await idle.go(''))).toBe(true);
      expect(await idle.closedByServer(FOREVER)).toBe(true);

      // a default server: an idle connection (past its handshake) stays open
      const kept = await RawClient.connect(d);
      await kept.hello();
      expect('size' in (await kept.go(''))).toBe(true);
      await new Promise((r) => setTimeout(r, 600));
      expect(kept.ended).toBe(false);
      kept.request(0, 0, 512);
      expect((await kept.simpleReply(FOREVER))?.error).toBe(0);
      kept.close();
    } finally {
      await s.close();
      await d.close();
    }
  });
});

describe('connection cap', () => {
  it('beyond maxConnections a connection is closed at once; the open ones are served; a freed place is taken again', async () => {
    const refusals: number[] = [];
    const s = await serveNbd({ dir: volDir }, { readOnly: true, maxConnections: 2, onConnectionRefused: (n) => refusals.push(n) });
    try {
      const a = await RawClient.connect(s);
      await a.hello();
      const b = await RawClient.connect(s);
      await b.hello();
      const c = await RawClient.connect(s);
      expect(await c.read(18, FOREVER)).toBeNull(); // no greeting: closed
      expect(c.ended).toBe(true);
      expect(refusals).toEqual([2]);
      expect('size' in (await a.go(''))).toBe(true);
      expect('size' in (await b.go(''))).toBe(true);
      a.close();
      await until(() => s.connections === 1);
      const d = await RawClient.connect(s);
      await d.hello();
      expect('size' in (await d.go(''))).toBe(true);
      b.close();
      d.close();
    } finally {
      await s.close();
    }
  });

  it('the default cap is 64', async () => {
    const s = await serveNbd({ dir: volDir }, { readOnly: true });
    const clients: RawClient[] = [];
    try {
      for (let i = 0; i < 64; i++) {
        const c = await RawClient.connect(s);
        await c.hello();
        clients.push(c);
      }
      const over = await RawClient.connect(s);
      expect(await over.read(18, FOREVER)).toBeNull();
    } finally {
      for (const c of clients) c.close();
      await s.close();
    }
  });

  it('connections handed to serving processes count too', async () => {
    // (processes need the built package; the count is kept by messages from the children)
    const { existsSync } = await import('node:fs');
    const { fileURLToPath } = await import('node:url');
    const dist = fileURLToPath(new URL('../../../dist/interop/nbd/index.js', import.meta.url));
    if (!existsSync(dist)) return;
    const { serveNbd: serveBuilt } = (await import(dist)) as { serveNbd: typeof serveNbd };
    const s = await serveBuilt({ dir: volDir }, { readOnly: true, processes: 1, maxConnections: 1 });
    try {
      const a = await RawClient.connect(s);
      await a.hello();
      expect('size' in (await a.go(''))).toBe(true); // now served by the child
      await until(() => s.connections === 1);
      const b = await RawClient.connect(s);
      expect(await b.read(18, FOREVER)).toBeNull();
      a.close();
      await until(() => s.connections === 0);
      const c = await RawClient.connect(s);
      expect(await c.hello()).toBeGreaterThan(0);
      c.close();
    } finally {
      await s.close();
    }
  });
});
