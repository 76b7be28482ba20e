import { closeSync, openSync, readSync, writeSync } from 'node:fs';

/** Flip two bytes of `file` at `at` (as a failing disk or a stray writer would). */
export function flipBytes(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(2);
  readSync(fd, b, 0, 2, at);
  b[0] ^= 0x01;
  b[1] ^= 0x80;
  writeSync(fd, b, 0, 2, at);
  closeSync(fd);
}
