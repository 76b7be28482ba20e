/**
 * How the Node stores treat symbolic links. Inside a namespace (a volume's directory, a served
 * store) there are only regular files and, for the store server, plain subdirectories: a link
 * there is never followed, whatever it points to, because whoever planted it would otherwise
 * steer reads, writes and deletes out of the directory (`unsafe-path`). A path that a person
 * gives on the command line (an export target, a raw device) may be a link, as /dev/disk/by-id
 * names are; it is followed for writing only when the link belongs to the user running the
 * command or to root, and never when it is dangling (a file would be created wherever it points).
 */
import type { Stats } from 'node:fs';
import { readlinkSync } from 'node:fs';
import { StrataError } from '../errors.js';

/**
 * `path` without `.` segments and trailing separators: `dir/` and `dir/.` make the kernel
 * resolve a link at `dir` even with O_NOFOLLOW or lstat, so a link check must see `dir`.
 */
export function plainPath(path: string): string {
  let p = path;
  for (;;) {
    const next = p.replace(/(?<=[^\\/:])[\\/]+\.?$/, '');
    if (next === p || next === '') return p;
    p = next;
  }
}

/** A link at a path given by the user that may be followed to write: owned by us or by root. */
export function trustedLink(link: Stats): boolean {
  const uid = process.geteuid?.();
  return uid === undefined || link.uid === uid || link.uid === 0;
}

/** A symbolic link where a namespace holds only files and directories of its own (`what` in `where`). */
export function linkInNamespace(what: string, where: string): StrataError {
  return new StrataError(
    'unsafe-path',
    `${what} in ${where} is a symbolic link; stores never follow links out of their directory. Remove the link (or put the real file or directory there).`,
  );
}

/** A dangling link at a path to create or write (nothing is created where it points). */
export function danglingLink(path: string): StrataError {
  return new StrataError(
    'unsafe-path',
    `${path} is a symbolic link to ${target(path)}, which does not exist; stratadisk does not create files through links. Give the real path, or remove the link.`,
  );
}

/** A link owned by another user at a path to write. */
export function foreignLink(path: string, link: Stats): StrataError {
  return new StrataError(
    'unsafe-path',
    `${path} is a symbolic link owned by uid ${link.uid} (another user); stratadisk writes through links only when they belong to you or to root. Give the real path (${target(path)}), or remove the link.`,
  );
}

function target(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return 'a path that cannot be read';
  }
}
