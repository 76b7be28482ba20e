/** Data to write: random blocks, a text stamp, a filled range; all in bounded chunks. */

/** getRandomValues fills at most 64 KiB per call. */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(length, i + 65536)));
  return out;
}

/** `count` distinct block indexes below `blocks`, in ascending order. */
export function randomBlockIndexes(blocks: number, count: number): number[] {
  const n = Math.min(count, blocks);
  const chosen = new Set<number>();
  while (chosen.size < n) chosen.add(Math.floor(Math.random() * blocks));
  return [...chosen].sort((a, b) => a - b);
}

/** Splits [offset, offset+length) into pieces of at most `chunk` bytes. */
export function* chunks(offset: number, length: number, chunk: number): Generator<{ offset: number; length: number }> {
  for (let done = 0; done < length; done += chunk) yield { offset: offset + done, length: Math.min(chunk, length - done) };
}

export function parseByte(text: string): number {
  const t = text.trim();
  const v = /^0x[0-9a-f]{1,2}$/i.test(t) ? Number.parseInt(t, 16) : /^\d{1,3}$/.test(t) ? Number(t) : NaN;
  if (!(v >= 0 && v <= 255)) throw new Error(`byte "${text}" must be 0-255 or 0x00-0xff`);
  return v;
}
