import { describe, expect, it } from 'vitest';
import { Progress } from '../../../src/cli/progress.js';

describe('Progress', () => {
  it('draws nothing when disabled', () => {
    let out = '';
    const p = new Progress({ write: (s: string) => (out += s) }, 'import', 100, false);
    p.update(50);
    p.finish();
    expect(out).toBe('');
  });

  it('shows percentage, bytes and rate, throttles redraws, and erases itself', () => {
    let out = '';
    let t = 0;
    const p = new Progress({ write: (s: string) => (out += s) }, 'export', 4 << 20, true, () => t);
    p.update(1 << 20);
    const first = out;
    expect(first).toContain('export [');
    expect(first).toContain(' 25% 1 MiB / 4 MiB');
    t = 10;
    p.update(2 << 20); // too soon: no redraw
    expect(out).toBe(first);
    t = 500;
    p.update(3 << 20);
    expect(out.length).toBeGreaterThan(first.length);
    expect(p.render()).toMatch(/ 75% 3 MiB \/ 4 MiB .*\/s$/);
    p.update(4 << 20); // completion always draws
    expect(out).toContain('100%');
    p.finish();
    expect(out.endsWith('\r\x1b[2K')).toBe(true);
  });
});
