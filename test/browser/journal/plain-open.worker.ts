/**
 * A worker that opens a volume the plain way (Volume.open, no write log attached), as an app
 * that does not know about journals would: writable (must be refused), then read-only (fine).
 * OPFS sync access exists only in dedicated workers, hence a worker and not the page.
 */
import { idbBackend, opfsBackend } from '../../../src/worker/backends.js';
import { Volume } from '../../../src/volume/volume.js';

self.onmessage = async (e: MessageEvent) => {
  const { backend, path } = e.data as { backend: 'opfs' | 'idb'; path: string };
  const b = backend === 'opfs' ? opfsBackend() : idbBackend();
  const out: { writable: string; readOnly: string; message?: string } = { writable: '', readOnly: '' };
  try {
    const ns = await b.open(path, { create: false, readOnly: false });
    try {
      const v = await Volume.open(ns);
      await v.close();
      out.writable = 'opened';
    } catch (err) {
      out.writable = (err as { code?: string }).code ?? String(err);
      out.message = String((err as Error).message);
    }
    const ro = await Volume.open(ns, { readOnly: true });
    out.readOnly = 'opened';
    await ro.close();
    await (ns as { close?: () => Promise<void> | void }).close?.();
  } catch (err) {
    out.readOnly = (err as { code?: string }).code ?? String(err);
  }
  postMessage(out);
};
