import { isStrataError } from '../errors.js';
import { parseSize as parse } from '../util/size.js';
import { UsageError } from './io.js';

export { formatBytes } from '../util/size.js';

/** `parseSize` of src/util/size.ts, reporting a bad size as a usage error (exit 2 with a hint). */
export function parseSize(text: string, what = 'size'): number {
  try {
    return parse(text, what);
  } catch (e) {
    if (isStrataError(e, 'invalid-argument')) throw new UsageError(e.message);
    throw e;
  }
}
