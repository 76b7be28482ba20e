import type { Command } from '../command.js';
import { bench } from './bench.js';
import { check } from './check.js';
import { commit } from './commit.js';
import { compare } from './compare.js';
import { create } from './create.js';
import { deleteSnapshot } from './delete-snapshot.js';
import { exportCommand } from './export.js';
import { importCommand } from './import.js';
import { info } from './info.js';
import { jobs } from './jobs.js';
import { map } from './map.js';
import { mirrorCommand } from './mirror.js';
import { revert } from './revert.js';
import { serveNbdCommand } from './serve-nbd.js';
import { snapshot } from './snapshot.js';
import { snapshots } from './snapshots.js';
import { tour } from './tour.js';
import { write } from './write.js';

/** Every subcommand, in the order `stratadisk --help` lists them. */
export const COMMANDS: readonly Command[] = [
  create,
  info,
  importCommand,
  write,
  exportCommand,
  snapshot,
  snapshots,
  revert,
  deleteSnapshot,
  commit,
  jobs,
  mirrorCommand,
  map,
  check,
  compare,
  serveNbdCommand,
  bench,
  tour,
];

export function findCommand(name: string): Command | undefined {
  return COMMANDS.find((c) => c.name === name);
}
