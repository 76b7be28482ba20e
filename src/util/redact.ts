/**
 * Keeping secrets out of printed text: a registry of known secrets and the redaction of URLs
 * carrying `#token=`. No Node imports: the store client (browser and Node) uses it too; reading
 * secrets from files and the environment is in secret.ts (Node).
 */
/** What replaces a secret in printed text. */
export const REDACTED = '[redacted]';

const known = new Set<string>();

/** Remember `secret` so that `redactSecrets` hides it (short strings are not registered: they would mangle text). */
export function registerSecret(secret: string): void {
  if (secret.length >= 8) known.add(secret);
}

/** `text` with every registered secret, and every `#token=...` / `token=...` value, replaced by [redacted]. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const s of known) out = out.split(s).join(REDACTED);
  for (const s of known) {
    const enc = encodeURIComponent(s);
    if (enc !== s) out = out.split(enc).join(REDACTED);
  }
  out = out.replace(/([#&?]token=)[^\s&#"'`)]+/gi, `$1${REDACTED}`);
  // any URL in the text: its password, and query parameters that carry credentials
  out = out.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@#?]*):[^\s@/#?]*@/gi, `$1:${REDACTED}@`);
  const param = /(:\/\/[^\s]*[?&][^=&#\s]*(?:signature|sig|credential|secret|password|key)[^=&#\s]*=)(?!\[redacted\])[^&#\s"'`)]*/gi;
  for (let round = 0; round < 16 && param.test(out); round++) {
    param.lastIndex = 0;
    out = out.replace(param, `$1${REDACTED}`);
  }
  return out;
}

/** A URL as it may be shown: the `#token=` fragment value and any password replaced. */
export function redactUrl(url: string): string {
  let out = url.replace(/(#(?:.*&)?token=)[^&]*/i, `$1${REDACTED}`);
  out = out.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@#?]*):[^@/#?]*@/i, `$1:${REDACTED}@`);
  // query parameters that carry credentials (presigned URLs: X-Amz-Signature, X-Amz-Credential, sig, token, ...)
  out = out.replace(/([?&][^=&#]*(?:token|signature|sig|credential|secret|password|key)[^=&#]*=)[^&#]*/gi, `$1${REDACTED}`);
  return out;
}

