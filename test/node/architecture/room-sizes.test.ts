/**
 * Narrow doors (issue 15 item 4): the public Volume stays a thin class over VolumeCore and the
 * rooms beside it (write path, snapshots, staged changes, views, create/open). A file that grows
 * past this is a room that wants splitting, not a limit to raise.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(__dirname, '../../../src');

describe('room sizes', () => {
  it('src/volume/volume.ts stays under 500 lines', () => {
    const lines = readFileSync(join(SRC, 'volume/volume.ts'), 'utf8').split('\n').length;
    expect(lines).toBeLessThan(500);
  });
});
