/**
 * Drives a guest's shell on v86's first serial port: collects what the guest prints, waits for
 * text, and runs a command returning just its output (between unique markers), for tests,
 * benchmarks and the demo's console.
 */
import { StrataError } from '../errors.js';

/** The parts of a v86 `V86` instance used here. */
export interface V86Serial {
  add_listener(event: 'serial0-output-byte', fn: (byte: number) => void): void;
  remove_listener(event: 'serial0-output-byte', fn: (byte: number) => void): void;
  serial0_send(data: string): void;
}

/** Output kept for `waitFor`; older text is dropped (a guest can print without end). */
const KEEP_CHARS = 1 << 20;

export class SerialConsole {
  /** Everything printed since the last `clear()` (up to 1 MiB of the newest text). */
  text = '';
  private waiters: { pattern: string | RegExp; resolve: () => void }[] = [];
  private readonly listener = (byte: number) => this.onByte(byte);
  private seq = 0;

  /** `onText` sees every character the guest prints (the demo's terminal). */
  constructor(private readonly emulator: V86Serial, private readonly onText?: (s: string) => void) {
    emulator.add_listener('serial0-output-byte', this.listener);
  }

  detach(): void {
    this.emulator.remove_listener('serial0-output-byte', this.listener);
  }

  clear(): void {
    this.text = '';
  }

  send(text: string): void {
    this.emulator.serial0_send(text);
  }

  /** Resolves once the text printed since the last `clear()` matches. */
  waitFor(pattern: string | RegExp, timeoutMs = 300_000): Promise<void> {
    if (matches(this.text, pattern)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const w = {
        pattern,
        resolve: () => {
          clearTimeout(t);
          resolve();
        },
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new StrataError('timeout', `The guest did not print ${String(pattern)} within ${timeoutMs} ms. Last output: ${JSON.stringify(this.text.slice(-300))}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Run a shell command in the guest; resolves with what it printed (CR LF turned to LF), without the echo. */
  async run(command: string, timeoutMs = 300_000): Promise<string> {
    const id = `${Date.now().toString(36)}${(this.seq++).toString(36)}`;
    // The markers are assembled by the shell, so the echoed command line never matches them.
    const begin = `@@B${id}@@`;
    const end = `@@E${id}@@`;
    const split = (m: string) => `${m.slice(0, 3)}''${m.slice(3)}`;
    this.clear();
    this.send(`echo ${split(begin)}; ${command}; echo ${split(end)}\n`);
    await this.waitFor(new RegExp(`${end}\\r?\\n`), timeoutMs);
    const t = this.text.replace(/\r\n/g, '\n');
    const from = t.indexOf(`${begin}\n`);
    const to = t.indexOf(end, from);
    return t.slice(from + begin.length + 1, to);
  }

  private onByte(byte: number): void {
    const c = String.fromCharCode(byte);
    this.text += c;
    if (this.text.length > KEEP_CHARS) this.text = this.text.slice(-KEEP_CHARS / 2);
    this.onText?.(c);
    if (this.waiters.length === 0) return;
    const done = this.waiters.filter((w) => matches(this.text, w.pattern));
    if (done.length === 0) return;
    this.waiters = this.waiters.filter((w) => !done.includes(w));
    for (const w of done) w.resolve();
  }
}

function matches(text: string, pattern: string | RegExp): boolean {
  return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);
}
