/**
 * The clean-part cache of an ObjectNamespace (object-namespace.ts): parts recently read, read
 * ahead or uploaded, across the files of one namespace, least recently used first out, bounded
 * in bytes. Keys are `<file id>:<part index>`.
 */
/** Clean parts recently read or uploaded, across the files of one namespace, bounded in bytes. */
export class PartCache {
  private readonly parts = new Map<string, Uint8Array>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: string): Uint8Array | undefined {
    const b = this.parts.get(key);
    if (b) {
      this.parts.delete(key);
      this.parts.set(key, b);
    }
    return b;
  }

  set(key: string, b: Uint8Array): void {
    this.drop(key);
    if (b.length > this.maxBytes) return;
    this.parts.set(key, b);
    this.bytes += b.length;
    for (const [k, v] of this.parts) {
      if (this.bytes <= this.maxBytes) break;
      this.parts.delete(k);
      this.bytes -= v.length;
    }
  }

  /** Drop the parts of one file (keys `<prefix><index>`) from index `from` on. */
  dropFrom(prefix: string, from: number): void {
    for (const k of [...this.parts.keys()]) if (k.startsWith(prefix) && Number(k.slice(prefix.length)) >= from) this.drop(k);
  }

  drop(key: string): void {
    const b = this.parts.get(key);
    if (b) {
      this.parts.delete(key);
      this.bytes -= b.length;
    }
  }
}
