/**
 * Who may reach a served volume (issue 13, item 1): by default only its user, through a Unix
 * socket 0600 in a 0700 directory; over TCP only clients holding TLS credentials (X.509 client
 * certificates signed by the CA, or a pre-shared key), unless --insecure says otherwise. TLS is
 * checked against the real clients (libnbd's nbdinfo, qemu-img), and refused when the client
 * speaks plain NBD, presents no or an untrusted certificate, or the wrong key. As a second local
 * user, the default socket and a TLS port give nothing away.
 */
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveNbd, type NbdServer } from '../../../src/interop/nbd/index.js';
import { readPskFile } from '../../../src/interop/nbd/tls.js';
import { startCli } from '../cli/harness.js';
import { otherUser, otherUserSkip } from '../helpers/other-user.js';
import { makeTestTls, type TestTls } from '../helpers/tls-certs.js';
import { have, KiB, makeVolume, MiB, RawClient, run, runOk, tempDir } from '../interop/nbd-helpers.js';

const tools = ['nbdinfo', 'qemu-img', 'qemu-io'].filter((t) => !have(t));
const NBD_OPT_LIST = 3;
const NBD_OPT_STARTTLS = 5;
const NBD_REP_ERR_TLS_REQD = 0x80000005;

const tmp = tempDir('sd-nbd-access-');
let tls: TestTls;
let otherCa: TestTls;
let live: Uint8Array;
const volDir = join(tmp.dir, 'vol');
beforeAll(async () => {
  tls = makeTestTls(tmp.dir);
  otherCa = makeTestTls(tmp.dir); // a second, unrelated CA with its own client certificate and key
  ({ live } = await makeVolume(volDir));
});
afterAll(() => tmp.cleanup());

function x509() {
  return { cert: readFileSync(tls.serverCert), key: readFileSync(tls.serverKey), ca: readFileSync(tls.caCert) };
}

describe('the default: a Unix socket only this user can reach', () => {
  it('serveNbd with no address listens on a 0600 socket in a 0700 directory of this user', async () => {
    const s = await serveNbd({ dir: volDir }, { readOnly: true });
    try {
      expect(s.uri).toMatch(/^nbd\+unix:\/\/\/\?socket=/);
      expect(s.port).toBe(0);
      const sock = s.socket!;
      const st = statSync(sock);
      expect(st.isSocket()).toBe(true);
      expect(st.mode & 0o777).toBe(0o600);
      const d = statSync(dirname(sock));
      expect(d.mode & 0o777).toBe(0o700);
      expect(d.uid).toBe(process.getuid!());
      const c = await RawClient.connect(s);
      await c.hello();
      expect('size' in (await c.go(''))).toBe(true);
      c.close();
    } finally {
      await s.close();
    }
  });

  it('a default directory planted by someone else (another owner, open mode, a symlink) is refused, not used', async () => {
    const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
    const base = mkdtempSync(join(tmp.dir, 'tmpdir-'));
    process.env.TMPDIR = base;
    delete process.env.XDG_RUNTIME_DIR;
    const place = join(base, `stratadisk-${process.getuid!()}`);
    try {
      mkdirSync(place, { mode: 0o777 });
      chmodSync(place, 0o777);
      await expect(serveNbd({ dir: volDir }, { readOnly: true })).rejects.toMatchObject({ code: 'exists', message: expect.stringMatching(/may be entered by other users/) });
      rmSync(place, { recursive: true });
      const elsewhere = mkdtempSync(join(tmp.dir, 'elsewhere-'));
      symlinkSync(elsewhere, place);
      await expect(serveNbd({ dir: volDir }, { readOnly: true })).rejects.toMatchObject({ code: 'exists' });
      rmSync(place);
      if (otherUser) {
        mkdirSync(place, { mode: 0o700 });
        chownSync(place, otherUser.uid, otherUser.gid);
        await expect(serveNbd({ dir: volDir }, { readOnly: true })).rejects.toMatchObject({ code: 'exists', message: expect.stringMatching(/belongs to another user/) });
        rmSync(place, { recursive: true });
      }
      // an XDG_RUNTIME_DIR that is not private is passed over for the temporary directory
      const runtime = mkdtempSync(join(tmp.dir, 'runtime-'));
      chmodSync(runtime, 0o755);
      process.env.XDG_RUNTIME_DIR = runtime;
      const s = await serveNbd({ dir: volDir }, { readOnly: true });
      expect(dirname(s.socket!)).toBe(place);
      await s.close();
      chmodSync(runtime, 0o700);
      const r = await serveNbd({ dir: volDir }, { readOnly: true });
      expect(dirname(r.socket!)).toBe(join(runtime, 'stratadisk'));
      await r.close();
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('a --socket PATH is made 0600 whatever the umask', async () => {
    const sock = join(tmp.dir, 'given.sock');
    const old = process.umask(0o002);
    let s: NbdServer;
    try {
      s = await serveNbd({ dir: volDir }, { readOnly: true, socket: sock });
    } finally {
      process.umask(old);
    }
    try {
      expect(statSync(sock).mode & 0o777).toBe(0o600);
    } finally {
      await s.close();
    }
  });

  it('TCP without TLS needs insecure: true (library) or --insecure (CLI), which warns', async () => {
    await expect(serveNbd({ dir: volDir }, { readOnly: true, port: 0 })).rejects.toMatchObject({ code: 'invalid-argument' });
    await expect(serveNbd({ dir: volDir }, { readOnly: true, host: '127.0.0.1' })).rejects.toMatchObject({ code: 'invalid-argument' });
    const refused = startCli(['serve-nbd', volDir, '--port', '0', '--read-only']);
    expect(await refused.done).toBe(2);
    expect(refused.out().stderr).toMatch(/TCP needs TLS.*--tls-certificates.*--insecure/s);
    const s = startCli(['serve-nbd', volDir, '--port', '0', '--read-only', '--insecure']);
    expect(await s.firstLine()).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/$/);
    expect(s.out().stderr).toMatch(/WARNING: --insecure: .* no TLS and no authentication; every local user can read and write/);
    s.stop();
    expect(await s.done).toBe(0);
  });

  it('the CLI with no address prints an nbd+unix URI that qemu-img reads', async () => {
    const s = startCli(['serve-nbd', volDir, '--read-only']);
    const uri = await s.firstLine();
    try {
      expect(uri).toMatch(/^nbd\+unix:\/\/\/\?socket=\/.*\.nbd\.sock$/);
      if (have('qemu-img')) expect(await runOk('qemu-img', ['info', '--output=json', uri])).toMatch(/"virtual-size": 8388608/);
    } finally {
      s.stop();
      expect(await s.done).toBe(0);
    }
  });
});

describe('TLS before anything else (FORCEDTLS)', () => {
  let server: NbdServer;
  beforeAll(async () => {
    server = await serveNbd({ dir: volDir }, { tls: x509() });
  });
  afterAll(async () => {
    await server.close();
  });

  it('listens on TCP and says nbds://', () => {
    expect(server.uri).toMatch(/^nbds:\/\/127\.0\.0\.1:\d+\/$/);
    expect(server.tls).toBe(true);
  });

  it('options before STARTTLS get NBD_REP_ERR_TLS_REQD; EXPORT_NAME ends the connection; STARTTLS with data is invalid', async () => {
    const c = await RawClient.connect(server);
    await c.hello();
    c.option(NBD_OPT_LIST);
    expect((await c.optionReply())!.type).toBe(NBD_REP_ERR_TLS_REQD);
    expect(await c.go('')).toEqual({ error: NBD_REP_ERR_TLS_REQD });
    c.option(NBD_OPT_STARTTLS, new Uint8Array(4));
    expect((await c.optionReply())!.type).toBe(0x80000003);
    c.option(1, Buffer.from(''));
    expect(await c.closedByServer(60_000)).toBe(true);
  });

  it.skipIf(tools.length > 0)('nbdinfo and qemu-img connect with the client certificate; the data is the volume', async () => {
    const info = await runOk('nbdinfo', ['--size', `nbds://localhost:${server.port}/?tls-certificates=${tls.dir}`]);
    expect(info.trim()).toBe(String(8 * MiB));
    const creds = `tls-creds-x509,id=tls0,endpoint=client,dir=${tls.dir}`;
    const img = `driver=nbd,host=localhost,port=${server.port},tls-creds=tls0`;
    expect(await runOk('qemu-img', ['info', '--output=json', '--object', creds, '--image-opts', img])).toMatch(/"virtual-size": 8388608/);
    const out = join(tmp.dir, 'x509.raw');
    await runOk('qemu-img', ['convert', '--object', creds, '--image-opts', img, '-O', 'raw', out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(live))).toBe(0);
    // and writes go through
    await runOk('qemu-io', ['--object', creds, '--image-opts', img, '-c', 'write -P 0x5a 64k 4k']);
    live.fill(0x5a, 64 * KiB, 68 * KiB);
    expect([...(await server.volume.read(64 * KiB, 4 * KiB))].every((b) => b === 0x5a)).toBe(true);
  });

  it.skipIf(tools.length > 0)('refused: a plain client, no client certificate, a certificate of another CA, an untrusted server for the client', async () => {
    const plain = await run('nbdinfo', ['--size', `nbd://localhost:${server.port}/`]);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/requires TLS/);
    const noCert = mkdtempSync(join(tmp.dir, 'ca-only-'));
    copyFileSync(tls.caCert, join(noCert, 'ca-cert.pem'));
    expect((await run('nbdinfo', ['--size', `nbds://localhost:${server.port}/?tls-certificates=${noCert}`])).code).not.toBe(0);
    // trusts our server's CA, but its client certificate is signed by another CA
    const foreign = mkdtempSync(join(tmp.dir, 'foreign-'));
    copyFileSync(tls.caCert, join(foreign, 'ca-cert.pem'));
    copyFileSync(otherCa.clientCert, join(foreign, 'client-cert.pem'));
    copyFileSync(otherCa.clientKey, join(foreign, 'client-key.pem'));
    expect((await run('nbdinfo', ['--size', `nbds://localhost:${server.port}/?tls-certificates=${foreign}`])).code).not.toBe(0);
    // the client does not trust a server whose certificate another CA signed
    expect((await run('nbdinfo', ['--size', `nbds://localhost:${server.port}/?tls-certificates=${otherCa.dir}`])).code).not.toBe(0);
    const q = await run('qemu-img', ['info', '--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${foreign}`, '--image-opts', `driver=nbd,host=localhost,port=${server.port},tls-creds=tls0`]);
    expect(q.code).not.toBe(0);
    // the server is still there for a good client
    expect((await runOk('nbdinfo', ['--size', `nbds://localhost:${server.port}/?tls-certificates=${tls.dir}`])).trim()).toBe(String(8 * MiB));
  });
});

describe.skipIf(tools.length > 0)('TLS with pre-shared keys', () => {
  let server: NbdServer;
  beforeAll(async () => {
    server = await serveNbd({ dir: volDir }, { readOnly: true, tls: { psk: readPskFile(tls.pskFile) } });
  });
  afterAll(async () => {
    await server.close();
  });

  it('nbdinfo (tls-psk-file) and qemu-img (tls-creds-psk) connect with the key', async () => {
    const info = await runOk('nbdinfo', ['--size', `nbds://${tls.pskUser}@localhost:${server.port}/?tls-psk-file=${tls.pskFile}`]);
    expect(info.trim()).toBe(String(8 * MiB));
    const out = join(tmp.dir, 'psk.raw');
    await runOk('qemu-img', ['convert', '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${tls.dir},username=${tls.pskUser}`, '--image-opts', `driver=nbd,host=localhost,port=${server.port},tls-creds=tls0`, '-O', 'raw', out]);
    expect(Buffer.compare(readFileSync(out), Buffer.from(await server.volume.read(0, 8 * MiB)))).toBe(0);
  });

  it('refused: a wrong key, an unknown username, a plain client', async () => {
    const wrong = join(otherCa.dir, 'keys.psk'); // same username, another key
    expect((await run('nbdinfo', ['--size', `nbds://${tls.pskUser}@localhost:${server.port}/?tls-psk-file=${wrong}`])).code).not.toBe(0);
    const d = mkdtempSync(join(tmp.dir, 'psk-'));
    const f = join(d, 'keys.psk');
    writeFileSync(f, `mallory:${tls.pskKey}\n`, { mode: 0o600 });
    expect((await run('nbdinfo', ['--size', `nbds://mallory@localhost:${server.port}/?tls-psk-file=${f}`])).code).not.toBe(0);
    expect((await run('nbdinfo', ['--size', `nbd://localhost:${server.port}/`])).code).not.toBe(0);
    expect((await runOk('nbdinfo', ['--size', `nbds://${tls.pskUser}@localhost:${server.port}/?tls-psk-file=${tls.pskFile}`])).trim()).toBe(String(8 * MiB));
  });

  it('a PSK file is read as username:hexkey lines; bad lines and short keys are refused without echoing the key', () => {
    const d = mkdtempSync(join(tmp.dir, 'pskf-'));
    const f = join(d, 'k.psk');
    writeFileSync(f, `a:${'00'.repeat(32)}\n\nb:${'ff'.repeat(16)}\n`);
    expect([...readPskFile(f).keys()]).toEqual(['a', 'b']);
    writeFileSync(f, 'a:zz11\n');
    expect(() => readPskFile(f)).toThrow(/Line 1 .* not "username:hexkey"/);
    writeFileSync(f, `a:${'ab'.repeat(8)}\n`);
    expect(() => readPskFile(f)).toThrow(/shorter than 128 bits/);
    try {
      readPskFile(f);
    } catch (e) {
      expect((e as Error).message).not.toContain('ab'.repeat(8));
    }
  });
});

describe.skipIf(!otherUser || tools.length > 0)(`a second local user ${otherUserSkip ?? ''}`, () => {
  const open = mkdtempSync(join(tmpdir(), 'sd-nbd-open-'));
  chmodSync(open, 0o755);
  afterAll(() => rmSync(open, { recursive: true, force: true }));

  it('cannot connect to the default socket, nor to a --socket in a directory it may enter', async () => {
    const s = await serveNbd({ dir: volDir }, { readOnly: true });
    const sock = join(open, 'nbd.sock'); // the directory lets it in: only the socket's mode refuses it
    const t = await serveNbd({ dir: volDir }, { readOnly: true, socket: sock });
    try {
      const r = await otherUser!.run('nbdinfo', ['--size', s.uri]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/Permission denied/);
      const r2 = await otherUser!.run('nbdinfo', ['--size', t.uri]);
      expect(r2.code).not.toBe(0);
      expect(r2.stderr).toMatch(/Permission denied/);
      // the owner can
      expect((await runOk('nbdinfo', ['--size', t.uri])).trim()).toBe(String(8 * MiB));
    } finally {
      await t.close();
      await s.close();
    }
  });

  it('cannot read or write through a TLS port without credentials (X.509 or PSK)', async () => {
    const caOnly = mkdtempSync(join(open, 'ca-'));
    chmodSync(caOnly, 0o755);
    copyFileSync(tls.caCert, join(caOnly, 'ca-cert.pem'));
    chmodSync(join(caOnly, 'ca-cert.pem'), 0o644);
    const x = await serveNbd({ dir: volDir }, { tls: x509() });
    try {
      const before = Buffer.from(await x.volume.read(0, 512));
      const w = await otherUser!.run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x41 0 512', `nbd://127.0.0.1:${x.port}/`]);
      expect(w.code).not.toBe(0);
      const r = await otherUser!.run('nbdcopy', [`nbd://127.0.0.1:${x.port}/`, 'null:']);
      expect(r.code).not.toBe(0);
      const noCert = await otherUser!.run('nbdinfo', ['--size', `nbds://localhost:${x.port}/?tls-certificates=${caOnly}`]);
      expect(noCert.code).not.toBe(0);
      expect(Buffer.compare(Buffer.from(await x.volume.read(0, 512)), before)).toBe(0);
    } finally {
      await x.close();
    }
    const p = await serveNbd({ dir: volDir }, { tls: { psk: readPskFile(tls.pskFile) } });
    try {
      const before = Buffer.from(await p.volume.read(0, 512));
      const w = await otherUser!.run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x41 0 512', `nbd://127.0.0.1:${p.port}/`]);
      expect(w.code).not.toBe(0);
      expect(Buffer.compare(Buffer.from(await p.volume.read(0, 512)), before)).toBe(0);
    } finally {
      await p.close();
    }
  });
});
