import { describe, expect, it } from 'vitest';
import { entityTag, evaluatePreconditions, MAX_CONDITION_HEADER, rangeApplies } from '../../../src/edge/conditional.ts';

const ID = 'a'.repeat(64);
const TAG = entityTag(ID);
const h = (o: Record<string, string>) => new Headers(o);

describe('edge validators', () => {
  it('the ETag is the quoted content ID', () => {
    expect(TAG).toBe(`"${ID}"`);
  });

  it('If-None-Match: the tag, a list holding it, a weak form of it and * give 304', () => {
    expect(evaluatePreconditions(h({ 'If-None-Match': TAG }), TAG)).toBe('not-modified');
    expect(evaluatePreconditions(h({ 'If-None-Match': `"x", ${TAG}` }), TAG)).toBe('not-modified');
    expect(evaluatePreconditions(h({ 'If-None-Match': `W/${TAG}` }), TAG)).toBe('not-modified');
    expect(evaluatePreconditions(h({ 'If-None-Match': '*' }), TAG)).toBe('not-modified');
    expect(evaluatePreconditions(h({ 'If-None-Match': '"a,b" ,' + TAG }), TAG)).toBe('not-modified');
  });

  it('If-None-Match: another tag, junk, an unquoted ID or an overlong list serve the body', () => {
    for (const v of ['"b"', ID, 'junk', '"', `"${ID}`, `${TAG}x`, `W/ ${TAG}`, `${TAG};`, `"x", ${'"y", '.repeat(MAX_CONDITION_HEADER / 5)}${TAG}`]) {
      expect(evaluatePreconditions(h({ 'If-None-Match': v }), TAG), v.slice(0, 40)).toBe('proceed');
    }
    expect(evaluatePreconditions(h({}), TAG)).toBe('proceed');
  });

  it('If-Match compares strongly: a weak tag or another tag fails (412)', () => {
    expect(evaluatePreconditions(h({ 'If-Match': TAG }), TAG)).toBe('proceed');
    expect(evaluatePreconditions(h({ 'If-Match': '*' }), TAG)).toBe('proceed');
    expect(evaluatePreconditions(h({ 'If-Match': `"x,y", ${TAG}` }), TAG)).toBe('proceed');
    expect(evaluatePreconditions(h({ 'If-Match': `W/${TAG}` }), TAG)).toBe('failed');
    expect(evaluatePreconditions(h({ 'If-Match': '"other"' }), TAG)).toBe('failed');
    expect(evaluatePreconditions(h({ 'If-Match': 'junk' }), TAG)).toBe('failed');
  });

  it('If-Range: only the current strong tag keeps the range; weak tags, other tags, dates and junk do not', () => {
    expect(rangeApplies(h({}), TAG)).toBe(true);
    expect(rangeApplies(h({ 'If-Range': TAG }), TAG)).toBe(true);
    expect(rangeApplies(h({ 'If-Range': ` ${TAG} ` }), TAG)).toBe(true);
    for (const v of [`W/${TAG}`, '"other"', 'Wed, 21 Oct 2015 07:28:00 GMT', `"x", ${TAG}`, '*', 'junk']) {
      expect(rangeApplies(h({ 'If-Range': v }), TAG), v).toBe(false);
    }
  });
});
