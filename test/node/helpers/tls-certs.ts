/**
 * Throwaway TLS material for tests, made with the `openssl` command: a CA, a server certificate
 * for localhost/127.0.0.1/::1 signed by it, a client certificate, and a PSK file. The directory
 * uses the file names QEMU's `tls-creds-x509` and libnbd's `tls-certificates` expect
 * (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem), and the PSK
 * file the `username:hexkey` lines of `tls-creds-psk`, nbdkit `--tls-psk` and libnbd
 * `tls-psk-file`. Files are 0600 in a 0700 directory; remove `dir` when done.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestTls {
  /** The directory holding every file below. */
  dir: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** `username:hexkey`, one line. */
  pskFile: string;
  pskUser: string;
  /** The PSK's bytes as hex. */
  pskKey: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Make a fresh set (about 0.1 s). `parent` defaults to the system's temporary directory. */
export function makeTestTls(parent = tmpdir()): TestTls {
  const dir = mkdtempSync(join(parent, 'sd-tls-'));
  const curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...curve, '-days', '2', '-subj', '/CN=stratadisk test CA', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = (name: string, cn: string, ext: string) => {
    openssl(['req', ...curve, '-subj', `/CN=${cn}`, '-keyout', `${name}-key.pem`, '-out', `${name}.csr`], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}-cert.pem`], dir);
  };
  leaf('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  leaf('client', 'stratadisk test client', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  const pskUser = 'stratadisk';
  const pskKey = randomBytes(32).toString('hex');
  writeFileSync(join(dir, 'keys.psk'), `${pskUser}:${pskKey}\n`);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o600);
  return {
    dir,
    caCert: join(dir, 'ca-cert.pem'),
    serverCert: join(dir, 'server-cert.pem'),
    serverKey: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'client-cert.pem'),
    clientKey: join(dir, 'client-key.pem'),
    pskFile: join(dir, 'keys.psk'),
    pskUser,
    pskKey,
  };
}
