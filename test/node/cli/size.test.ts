import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/io.js';
import { formatBytes, parseSize } from '../../../src/cli/size.js';

describe('parseSize', () => {
  it('reads plain bytes and binary units', () => {
    expect(parseSize('0')).toBe(0);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('512B')).toBe(512);
    expect(parseSize('64K')).toBe(65536);
    expect(parseSize('64k')).toBe(65536);
    expect(parseSize('64KiB')).toBe(65536);
    expect(parseSize('64KB')).toBe(65536);
    expect(parseSize('1M')).toBe(2 ** 20);
    expect(parseSize('1MiB')).toBe(2 ** 20);
    expect(parseSize('1G')).toBe(2 ** 30);
    expect(parseSize('1gib')).toBe(2 ** 30);
    expect(parseSize('2T')).toBe(2 * 2 ** 40);
    expect(parseSize(' 8 M ')).toBe(8 * 2 ** 20);
  });

  it('accepts a fraction only when it is a whole number of bytes', () => {
    expect(parseSize('1.5G')).toBe(1.5 * 2 ** 30);
    expect(parseSize('0.5K')).toBe(512);
    expect(() => parseSize('1.5')).toThrow(UsageError);
    expect(() => parseSize('0.1K')).toThrow(/whole number of bytes/);
  });

  it('rejects junk, negatives and overflow with a message naming the option', () => {
    for (const junk of ['', ' ', 'abc', '1X', '-1', '-1G', '1e9', '0x100', '1..5G', '1.G', 'G', '1 G B', '1GG', 'Infinity', 'NaN']) {
      expect(() => parseSize(junk, '--size'), junk).toThrow(UsageError);
    }
    expect(() => parseSize('junk', '--size')).toThrow(/--size "junk" is not a size/);
    expect(() => parseSize('9999999P')).toThrow(/too large/);
  });
});

describe('formatBytes', () => {
  it('uses binary units with a few significant digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(65536)).toBe('64 KiB');
    expect(formatBytes(1.5 * 2 ** 30)).toBe('1.5 GiB');
    expect(formatBytes(256 * 2 ** 20)).toBe('256 MiB');
  });
});
