import { existsSync, statSync } from 'node:fs';
import { StrataError } from '../errors.js';
import { SNAPSHOT_NAME } from '../format/manifest.js';
import { NodeDirNamespace } from '../store/node-dir.js';
import { NodeFileStore } from '../store/node-file.js';
import { Volume, type VolumeReader } from '../volume/volume.js';
import { openJournaled, parsePoint, type Journal } from '../journal/index.js';
import { ObjectNamespace } from '../transfer/object-namespace.js';
import { openObjectStore } from '../transfer/open-objects.js';
import { redactUrl } from '../util/redact.js';
import { UsageError } from './io.js';

/**
 * A volume directory, optionally naming one of its snapshots (`DIR@NAME`) or a point of its
 * write log (`DIR@seq:N`, `DIR@time:ISO`, `DIR@mark:LABEL`; `point` holds the text after `@`).
 */
export interface Target {
  dir: string;
  snapshot?: string;
  point?: string;
}

/** `seq:`, `time:` and `mark:` after the `@` name a point of the write log, never a snapshot. */
export const POINT_PREFIX = /^(seq|time|mark):/;

/**
 * Splits `DIR@NAME` / `DIR@POINT`. A path may itself contain `@`, so the split happens only when
 * the whole text is not an existing path and what follows the `@` is a snapshot name or a point.
 * A point is found at the first `@` followed by `seq:`, `time:` or `mark:` (a mark's label may
 * hold `@`); otherwise the last `@` splits off a snapshot name. A snapshot whose name starts with
 * one of those prefixes cannot be named this way (the point wins).
 */
export function parseTarget(spec: string, allowSnapshot: boolean, command: string): Target {
  if (spec === '') throw new UsageError('the volume directory is empty', command);
  if (!existsSync(spec)) {
    for (let at = spec.indexOf('@'); at > 0; at = spec.indexOf('@', at + 1)) {
      const rest = spec.slice(at + 1);
      if (!POINT_PREFIX.test(rest)) continue;
      if (!allowSnapshot) throw new UsageError(`${spec} names a point of the write log, which is read-only; \`${command}\` needs the volume itself (DIR)`, command);
      parsePoint(rest);
      return { dir: spec.slice(0, at), point: rest };
    }
  }
  const at = spec.lastIndexOf('@');
  if (at > 0 && !existsSync(spec)) {
    const name = spec.slice(at + 1);
    if (SNAPSHOT_NAME.test(name)) {
      if (!allowSnapshot) throw new UsageError(`${spec} names a snapshot, which is read-only; \`${command}\` needs the volume itself (DIR)`, command);
      return { dir: spec.slice(0, at), snapshot: name };
    }
  }
  return { dir: spec };
}

/** The namespace of a write log the manifest places at `where` (an absolute directory; '' is handled by openJournaled). */
export function logNamespace(readOnly: boolean): (where: string) => NodeDirNamespace {
  return (where) => new NodeDirNamespace(where, { create: false, readOnly });
}

/**
 * Opens the volume in `dir` with messages that speak CLI. Read-only opens never write (no
 * repair, no garbage collection), so they work on read-only media and on a volume being inspected.
 */
export async function openVolume(dir: string, readOnly: boolean): Promise<Volume> {
  return (await openJournaledVolume(dir, readOnly, !readOnly)).volume;
}

/**
 * Opens the volume in `dir`, with its write log when it keeps one and `withLog` (always for a
 * writer: every write is logged, and closing the volume closes the log). A read-only open reads
 * the log only for points; close that journal yourself. `journal` is null for a volume without
 * a log (and for object-store volumes).
 */
export async function openJournaledVolume(dir: string, readOnly: boolean, withLog = true): Promise<{ volume: Volume; journal: Journal | null }> {
  if (dir.startsWith('s3://')) return { volume: await openObjectVolume(dir, readOnly), journal: null };
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new StrataError('not-found', `No volume at ${dir}: the directory does not exist. Create one with \`stratadisk create ${dir} --size 1G\`.`);
  }
  if (!st.isDirectory()) throw new StrataError('invalid-argument', `${dir} is not a directory; a volume is a directory (create one with \`stratadisk create DIR --size 1G\`).`);
  const ns = new NodeDirNamespace(dir, { readOnly });
  try {
    if (!withLog && readOnly) return { volume: await Volume.open(ns, { readOnly }), journal: null };
    return await openJournaled(ns, { readOnly, logNamespace: logNamespace(readOnly) });
  } catch (e) {
    if (e instanceof StrataError && e.code === 'corrupt' && e.message.includes('`stratadisk salvage DIR OUT`')) {
      throw new StrataError('corrupt', e.message.replaceAll('`stratadisk salvage DIR OUT`', `\`stratadisk salvage ${dir} OUT\``), { cause: e });
    }
    if (e instanceof StrataError && e.code === 'not-found' && e.message.startsWith('No stratadisk volume here')) {
      throw new StrataError('not-found', `No stratadisk volume in ${dir} (no manifest, or its creation never completed). Create one with \`stratadisk create ${dir} --size 1G\`.`, { cause: e });
    }
    throw e;
  }
}

/**
 * A volume in an object store (s3://BUCKET/PREFIX, as `copy` writes it), for the commands that
 * only read; commands that write need a local volume.
 */
async function openObjectVolume(url: string, readOnly: boolean): Promise<Volume> {
  const shown = redactUrl(url);
  if (!readOnly) throw new StrataError('unsupported', `${shown} is a volume in an object store, which this command cannot change; copy it to a directory first (\`stratadisk copy ${shown} DIR\`).`);
  const ns = new ObjectNamespace(await openObjectStore(url), { readOnly: true, label: shown });
  try {
    return await Volume.open(ns, { readOnly: true });
  } catch (e) {
    if (e instanceof StrataError && e.code === 'not-found' && e.message.startsWith('No stratadisk volume here')) {
      throw new StrataError('not-found', `No stratadisk volume at ${shown}. Put one there with \`stratadisk copy DIR ${shown}\`.`, { cause: e });
    }
    throw e;
  }
}

/** Open, run `fn`, and always close (a writable close flushes). */
export async function withVolume<T>(dir: string, readOnly: boolean, fn: (v: Volume) => Promise<T>): Promise<T> {
  const v = await openVolume(dir, readOnly);
  try {
    return await fn(v);
  } finally {
    await v.close();
  }
}

/** A readable view for `export`, `map` and `compare`: a volume, a snapshot, or (for compare) a raw file. */
export interface Source {
  label: string;
  size: number;
  readInto(offset: number, target: Uint8Array): Promise<void>;
  /** Present for volumes and snapshots. */
  reader?: VolumeReader;
  close(): Promise<void>;
}

/** Opens `DIR`, `DIR@NAME` or `DIR@POINT` (seq:N, time:ISO, mark:LABEL) read-only. */
export async function openVolumeSource(spec: string, command: string): Promise<Source & { reader: VolumeReader }> {
  const t = parseTarget(spec, true, command);
  const { volume: v, journal } = await openJournaledVolume(t.dir, true);
  try {
    let reader: VolumeReader;
    if (t.point !== undefined) {
      if (!journal) throw new StrataError('not-found', `${t.dir} keeps no write log, so it has no point ${t.point}; start one with \`stratadisk journal enable ${t.dir}\`, or name a snapshot (${t.dir}@NAME).`);
      reader = journal.view(t.point);
    } else reader = t.snapshot === undefined ? v : v.openSnapshot(t.snapshot);
    const close = async () => {
      await journal?.close();
      await v.close();
    };
    return { label: spec, size: reader.size, readInto: (o, b) => reader.readInto(o, b), reader, close };
  } catch (e) {
    await journal?.close();
    await v.close();
    throw e;
  }
}

/** Opens a volume (`DIR`, `DIR@NAME`) or a raw image file / block device, read-only. */
export async function openAnySource(spec: string, command: string): Promise<Source> {
  let st;
  try {
    st = statSync(spec);
  } catch {
    st = undefined;
  }
  if (st && (st.isFile() || st.isBlockDevice())) {
    const store = await NodeFileStore.open(spec, { readOnly: true, io: 'async' });
    return { label: spec, size: store.size, readInto: (o, b) => store.readInto(o, b), close: () => store.close() };
  }
  if (!st && !spec.includes('@') && !spec.startsWith('s3://')) throw new StrataError('not-found', `${spec} does not exist; give a volume directory, DIR@SNAPSHOT, or a raw image file.`);
  return openVolumeSource(spec, command);
}
