import { StrataError } from '../errors.js';
import { REQUIREMENT_NAME, type Requirement } from '../format/manifest.js';
import type { VolumeCore } from './core.js';
import { cloneManifest } from './tree.js';

/**
 * Requirements of a volume (manifest `requires`): capabilities a writer must attach before it
 * writes, such as a write log that must see every write. The volume only records them and
 * refuses writable opens that do not handle them (open.ts); the capability itself lives in a
 * room above (src/journal/) and attaches through the write observers.
 */
export function listRequirements(core: VolumeCore): Requirement[] {
  return (core.manifest.requires ?? []).map((r) => ({ ...r }));
}

/** Record (`where` a string) or drop (`where` null) requirement `name`: one manifest commit. `keeps`: snapshots no commit may drop while it is recorded. */
export async function setRequirement(core: VolumeCore, name: string, where: string | null, keeps?: string[], settings?: Record<string, string | number>): Promise<void> {
  if (!REQUIREMENT_NAME.test(name)) throw new StrataError('invalid-argument', `"${name}" is not a requirement name (lowercase letters, digits and '-').`);
  core.assertOpen();
  if (core.readOnly) throw new StrataError('read-only', 'This volume is open read-only; open it for writing to change what it requires.');
  await core.exclusive(async () => {
    core.assertOpen();
    const m = cloneManifest(core.manifest);
    const rest = (m.requires ?? []).filter((r) => r.name !== name);
    if (where !== null) {
      const old = (m.requires ?? []).find((r) => r.name === name);
      const st = settings ?? old?.settings;
      rest.push({ name, where, ...(keeps && keeps.length > 0 ? { keeps: [...keeps] } : old?.keeps ? { keeps: old.keeps } : {}), ...(st && Object.keys(st).length > 0 ? { settings: { ...st } } : {}) });
    }
    if (rest.length > 0) m.requires = rest;
    else delete m.requires;
    await core.commit(m);
  });
}
