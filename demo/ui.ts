/** DOM helpers: element lookup, the status line, progress bars. */
import { escapeHtml } from './format.js';

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo: no element #${id}`);
  return el as T;
}

export function inputValue(id: string): string {
  return $<HTMLInputElement | HTMLSelectElement>(id).value;
}

export type StatusKind = 'info' | 'busy' | 'ok' | 'error';

/** The error code of a StrataError (or anything with a string `code`), else undefined. */
export function errorCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Shows a message in the status line; an error shows its code first. */
export function setStatus(kind: StatusKind, message: string, code?: string): void {
  const el = $('status');
  el.dataset.kind = kind;
  el.dataset.code = code ?? '';
  el.innerHTML = (code ? `<code>${escapeHtml(code)}</code> ` : '') + escapeHtml(message);
}

export function setProgress(id: string, done: number, total: number): void {
  const p = $<HTMLProgressElement>(id);
  p.max = Math.max(1, total);
  p.value = Math.min(done, p.max);
}
