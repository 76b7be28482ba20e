/** Unique names per test run and case, so runs and cases never share OPFS paths or databases. */
let counter = 0;
const run = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export function uniqueName(prefix: string): string {
  return `${prefix}-${run}-${++counter}`;
}
