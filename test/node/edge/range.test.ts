import { describe, expect, it } from 'vitest';
import { contentRange, decideRange, MAX_RANGE_HEADER, unsatisfiedRange } from '../../../src/edge/range.ts';

const SIZE = 1000;

describe('edge Range header', () => {
  it('reads the three single-range forms', () => {
    expect(decideRange('bytes=0-99', SIZE)).toEqual({ kind: 'partial', start: 0, end: 100 });
    expect(decideRange('bytes=900-', SIZE)).toEqual({ kind: 'partial', start: 900, end: 1000 });
    expect(decideRange('bytes=-10', SIZE)).toEqual({ kind: 'partial', start: 990, end: 1000 });
    expect(decideRange('bytes=999-999', SIZE)).toEqual({ kind: 'partial', start: 999, end: 1000 });
  });

  it('clamps a last position past the end and a suffix longer than the representation', () => {
    expect(decideRange('bytes=500-5000', SIZE)).toEqual({ kind: 'partial', start: 500, end: 1000 });
    expect(decideRange('bytes=-5000', SIZE)).toEqual({ kind: 'partial', start: 0, end: 1000 });
  });

  it('accepts the unit in any case, blanks around the range and empty list elements', () => {
    expect(decideRange('Bytes= 1-2 ', SIZE)).toEqual({ kind: 'partial', start: 1, end: 3 });
    expect(decideRange('bytes=1-2,', SIZE)).toEqual({ kind: 'partial', start: 1, end: 3 });
    expect(decideRange('bytes=, ,1-2', SIZE)).toEqual({ kind: 'partial', start: 1, end: 3 });
  });

  it('answers 416 for a range that starts at or past the end, bytes=-0, and any range of an empty version', () => {
    expect(decideRange('bytes=1000-', SIZE)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=1000-2000', SIZE)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=-0', SIZE)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=0-0', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=-1', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(unsatisfiedRange(SIZE)).toBe('bytes */1000');
    expect(contentRange(990, 1000, SIZE)).toBe('bytes 990-999/1000');
  });

  it('treats huge numbers as beyond any size, never as a wrapped or rounded offset', () => {
    expect(decideRange('bytes=99999999999999999999999999-', SIZE)).toEqual({ kind: 'unsatisfiable' });
    expect(decideRange('bytes=0-99999999999999999999999999', SIZE)).toEqual({ kind: 'partial', start: 0, end: 1000 });
    expect(decideRange('bytes=-99999999999999999999999999', SIZE)).toEqual({ kind: 'partial', start: 0, end: 1000 });
    expect(decideRange(`bytes=${'0'.repeat(500)}5-${'0'.repeat(500)}9`, SIZE)).toEqual({ kind: 'partial', start: 5, end: 10 });
    const big = 2 ** 40; // a 1 TiB version
    expect(decideRange(`bytes=${big - 1}-`, big)).toEqual({ kind: 'partial', start: big - 1, end: big });
    expect(decideRange('bytes=9007199254740993-9007199254740993', 2 ** 53)).toEqual({ kind: 'unsatisfiable' });
  });

  it('ignores several ranges (the whole version, 200), as S3 does', () => {
    expect(decideRange('bytes=0-1,5-6', SIZE)).toEqual({ kind: 'full' });
    expect(decideRange(`bytes=${Array.from({ length: 150 }, (_, i) => `${i}-${i}`).join(',')}`, SIZE)).toEqual({ kind: 'full' });
    expect(decideRange('bytes=5000-6000,7000-8000', SIZE)).toEqual({ kind: 'full' });
  });

  it('ignores junk, other units, inverted ranges and overlong headers', () => {
    for (const h of ['', 'bytes', 'bytes=', 'bytes=-', 'bytes=a-b', 'bytes=1-a', 'bytes=0x10-20', 'bytes=-1-2', 'bytes=+1-2', 'bytes=1.5-2', 'bytes=1e3-', 'items=0-1', 'bytes 0-1', '=0-1', 'bytes=5-4', 'bytes=1 2-3', '\u0000bytes=0-1', 'bytes=０-１']) {
      expect(decideRange(h, SIZE), JSON.stringify(h)).toEqual({ kind: 'full' });
    }
    expect(decideRange(`bytes=0-1${' '.repeat(MAX_RANGE_HEADER)}`, SIZE)).toEqual({ kind: 'full' });
    expect(decideRange(null, SIZE)).toEqual({ kind: 'full' });
  });
});
