/** The list of volumes this origin has created or opened, kept in localStorage. */

/** `memory` lives only as long as this tab's worker: handy to try things without touching storage. */
export type DemoBackend = 'opfs' | 'idb' | 'memory';

export interface KnownVolume {
  backend: DemoBackend;
  name: string;
}

const KEY = 'stratadisk-demo:volumes';

export function loadKnown(): KnownVolume[] {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(KEY) ?? '[]');
    if (!Array.isArray(parsed)) return [];
    return parsed.filter(
      (v): v is KnownVolume =>
        typeof v === 'object' && v !== null && (v.backend === 'opfs' || v.backend === 'idb' || v.backend === 'memory') && typeof v.name === 'string',
    );
  } catch {
    return [];
  }
}

function save(list: KnownVolume[]): void {
  localStorage.setItem(KEY, JSON.stringify(list));
}

export function rememberVolume(v: KnownVolume): void {
  if (v.backend === 'memory') return;
  const list = loadKnown().filter((k) => !(k.backend === v.backend && k.name === v.name));
  list.unshift(v);
  save(list.slice(0, 24));
}

export function forgetVolume(v: KnownVolume): void {
  save(loadKnown().filter((k) => !(k.backend === v.backend && k.name === v.name)));
}

/** Where a demo volume lives in its backend: `volumes/<name>`. */
export function volumePath(name: string): string {
  return `volumes/${name}`;
}

export function checkVolumeName(name: string): string {
  const n = name.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(n)) {
    throw new Error(`volume name "${name}": use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  return n;
}
