/** The NBD server (Node only): serve a volume, its snapshots, to QEMU, libnbd and the kernel client. */
export { serveNbd, type NbdServer, type NbdSource, type ServeNbdOptions } from './server.js';
export type { NbdExport } from './exports.js';
