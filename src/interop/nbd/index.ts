/** The NBD server (Node only): serve a volume, its snapshots, to QEMU, libnbd and the kernel client. */
export { serveNbd, type NbdServer, type NbdSource, type ServeNbdOptions } from './server.js';
export type { NbdExport } from './exports.js';
export { readCertificateDir, readPskFile, type NbdTls, type NbdTlsPsk, type NbdTlsX509 } from './tls.js';
export { DEFAULT_HANDSHAKE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from './limits.js';
