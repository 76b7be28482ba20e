/**
 * Node-only backends. Imported only by ./serve-node.ts (`#worker-serve` under the `node`
 * condition), so `node:` modules never reach a browser bundle.
 */
import { readdir, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '../errors.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { MANIFEST_SLOTS } from '../format/manifest.js';
import { memoryBackend, remoteBackend, type Backend, type BackendTable } from './backends.js';

/** `node-dir`: a volume is a directory of files. */
export function nodeDirBackend(): Backend {
  return {
    isAvailable: () => true,
    async open(path, { create, readOnly }) {
      const ns = new NodeDirNamespace(path, { create: create && !readOnly, readOnly });
      // Touch it now so a missing directory is `not-found` here, not at the first store.
      await ns.list();
      return ns;
    },
    async remove(path) {
      try {
        await rmdir(path);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        if (code === 'ENOTEMPTY' || code === 'EEXIST') return; // other files of the user's: leave the directory
        throw new StrataError('io', `Could not remove the directory ${path}: ${String(e)}`, { cause: e });
      }
    },
    async list(parent) {
      const dir = parent ?? '.';
      const out: string[] = [];
      for (const d of await readdir(dir, { withFileTypes: true })) {
        if (!d.isDirectory()) continue;
        const p = join(dir, d.name);
        for (const slot of MANIFEST_SLOTS) {
          if (await stat(join(p, slot)).then(() => true, () => false)) {
            out.push(p);
            break;
          }
        }
      }
      return out.sort();
    },
  };
}

export async function nodeBackends(): Promise<BackendTable> {
  return { memory: memoryBackend(), 'node-dir': nodeDirBackend(), remote: remoteBackend() };
}
