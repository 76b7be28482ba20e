/**
 * The control socket's peer check (src/util/socket-auth.ts), apart from the socket's mode: on a
 * platform that ignored socket modes (simulated: the socket made 0666), another user reaches
 * the server but cannot prove it runs as the server's user, and is refused with a message (and
 * a log line on the server). The other way round, a socket planted by another user is refused
 * by the client before it sends its request.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, chownSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROL_SOCKET, requestControl, serveControl, type ControlServer } from '../../../src/jobs/control.js';
import { NodeDirNamespace } from '../../../src/store/node-dir.js';
import { Volume } from '../../../src/volume/volume.js';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const built = existsSync(BIN);
const posix = process.platform !== 'win32';

/** Lines a raw client (no authentication) gets after sending `send` on connect. */
function rawExchange(path: string, send: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path, () => c.write(send));
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('close', () => resolve(got.split('\n').filter(Boolean)));
    c.on('error', reject);
  });
}

describe.skipIf(!posix)('control socket peer check', () => {
  let base = '';
  let vol: Volume;
  let control: ControlServer;
  const refusals: string[] = [];

  beforeAll(async () => {
    base = mkdtempSync(join(tmpdir(), 'sd-auth-'));
    chmodSync(base, 0o755);
    vol = await Volume.create(new NodeDirNamespace(base), { size: 1 << 20, blockSize: 4096 });
    control = await serveControl(vol, base, undefined, { onRefused: (r) => refusals.push(r) });
  });
  afterAll(async () => {
    await control.close();
    await vol.close();
    rmSync(base, { recursive: true, force: true });
  });

  it('an old client that sends its request at once is refused with a message, and logged', async () => {
    const lines = (await rawExchange(join(base, CONTROL_SOCKET), '{"op":"jobs"}\n')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ type: 'auth', scheme: 'hmac-sha256-1' });
    expect(lines[1]).toEqual({
      type: 'error',
      code: 'permission-denied',
      message: "This control socket admits only clients that prove they run as the server's user; use a stratadisk client of the same version as the server.",
    });
    expect(lines).toHaveLength(2); // no job list
    expect(refusals.at(-1)).toBe('refused a control socket connection: the client did not authenticate (an older stratadisk, or not a stratadisk client)');
  });

  it('a client with a wrong proof is refused', async () => {
    const lines = await rawExchange(join(base, CONTROL_SOCKET), `{"op":"auth","nonce":"${'00'.repeat(32)}","proof":"${'11'.repeat(32)}"}\n{"op":"jobs"}\n`);
    expect(JSON.parse(lines[1]!)).toMatchObject({ type: 'error', code: 'permission-denied', message: expect.stringContaining('belongs to another user') });
    expect(lines).toHaveLength(2);
    expect(refusals.at(-1)).toBe("refused a control socket connection: the client could not prove it runs as this server's user (wrong key)");
  });

  it('the owner gets in; the key is 0600 in a 0700 directory', async () => {
    expect(await requestControl(base, { op: 'jobs' })).toEqual({ type: 'jobs', jobs: [] });
    const dirs = (await import('node:fs')).readdirSync(base).filter((n) => n.startsWith(`${CONTROL_SOCKET}.`));
    expect(dirs).toHaveLength(1);
    const { statSync } = await import('node:fs');
    expect(statSync(join(base, dirs[0]!)).mode & 0o777).toBe(0o700);
    expect(statSync(join(base, dirs[0]!, 'key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(base, CONTROL_SOCKET)).mode & 0o777).toBe(0o600);
  });

  it.skipIf(!otherUser || !built)(`another user who reaches the socket (mode ignored) cannot authenticate ${otherUserSkip ?? ''}`, async () => {
    chmodSync(join(base, CONTROL_SOCKET), 0o666); // as if the platform ignored socket modes
    try {
      const before = refusals.length;
      const r = await otherUser!.run(process.execPath, [BIN, 'jobs', base]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`stratadisk: permission-denied: The control socket ${join(base, CONTROL_SOCKET)} belongs to another user; only the user who started its server can use it. Run the command as that user.\n`);
      // the client hung up without an answer: the server logged it
      while (refusals.length === before) await new Promise((res) => setTimeout(res, 20));
      expect(refusals.at(-1)).toMatch(/^refused a control socket connection: /);
    } finally {
      chmodSync(join(base, CONTROL_SOCKET), 0o600);
    }
  });

  it.skipIf(!otherUser)(`a control socket planted by another user gets no request ${otherUserSkip ?? ''}`, async () => {
    // The other user owns a directory and serves a fake control socket there, naming its own key.
    const dir = join(base, 'planted');
    mkdirSync(dir);
    chownSync(dir, otherUser!.uid, otherUser!.gid);
    const sock = join(dir, CONTROL_SOCKET);
    const log = join(dir, 'received');
    const ready = join(dir, 'listening');
    const fake = otherUser!.run(process.execPath, [
      '-e',
      `const fs = require('fs'); const d = ${JSON.stringify(sock)} + '.abcdef';
       fs.mkdirSync(d, { mode: 0o700 }); fs.writeFileSync(d + '/key', Buffer.alloc(32, 7));
       const s = require('net').createServer((c) => {
         let got = '';
         c.write(JSON.stringify({ type: 'auth', scheme: 'hmac-sha256-1', nonce: '22'.repeat(32), key: ${JSON.stringify(`${CONTROL_SOCKET}.abcdef/key`)} }) + '\\n');
         c.on('data', (b) => (got += b)); c.on('close', () => { fs.writeFileSync(${JSON.stringify(log)}, got); process.exit(0); });
       });
       s.listen(${JSON.stringify(sock)}, () => { fs.chmodSync(${JSON.stringify(sock)}, 0o666); fs.writeFileSync(${JSON.stringify(ready)}, ''); });`,
    ]);
    // Wait for the listen callback, not the socket file: the file appears at bind, before listen,
    // and a connect in between is refused (seen once in CI as \`not-found\`).
    while (!existsSync(ready)) await new Promise((res) => setTimeout(res, 20));
    await expect(requestControl(dir, { op: 'mirror', target: 'https://store.example/vol#token=secret' })).rejects.toMatchObject({
      code: 'permission-denied',
      message: `The control socket ${sock} belongs to another user; only the user who started its server can use it. Run the command as that user.`,
    });
    expect((await fake).code).toBe(0);
    expect(readFileSync(log, 'utf8')).toBe(''); // not even the client's proof
  });
});
