import { StrataError } from '../errors.js';

/**
 * `fetch` for the HTTP clients (the store client, copy-on-read images): redirects are followed
 * only within the origin of the URL asked for (same scheme, host and port, so never from https
 * to http), at most `MAX_REDIRECTS` of them; any other redirect is refused with `untrusted`
 * and nothing is sent to its target. A TLS certificate that no trusted CA signed is refused
 * with `untrusted` as well (`tlsFailure`), never retried as if the network had failed.
 *
 * In Node the redirect is read with `redirect: 'manual'` and its Location checked before it is
 * followed. Browsers hide the Location of a manual redirect (an opaque answer): there the
 * browser follows it (it drops the Authorization header on a cross-origin hop and blocks
 * https->http from an https page) and the answer is refused unless it comes from our origin.
 */
export const MAX_REDIRECTS = 5;

export async function fetchSameOrigin(fetchFn: typeof fetch, url: string, init: RequestInit, label: string): Promise<Response> {
  const origin = new URL(url).origin;
  let current = url;
  for (let hop = 0; ; hop++) {
    const res = await fetchFn(current, { ...init, redirect: 'manual' });
    if (res.type === 'opaqueredirect') {
      const followed = await fetchFn(current, { ...init, redirect: 'follow' });
      if (followed.url !== '' && new URL(followed.url).origin !== origin) {
        await followed.body?.cancel().catch(() => {});
        throw refused(label, `redirected to another origin (${new URL(followed.url).origin})`);
      }
      return followed;
    }
    if (res.status < 300 || res.status >= 400 || res.status === 304) return res;
    const location = res.headers.get('location');
    if (location === null) return res;
    await res.body?.cancel().catch(() => {});
    let next: URL;
    try {
      next = new URL(location, current);
    } catch {
      throw refused(label, 'redirected to an address that is not a URL');
    }
    if (new URL(current).protocol === 'https:' && next.protocol !== 'https:') throw refused(label, `redirected from https to ${next.protocol.replace(':', '')} (${next.origin}): a downgrade`);
    if (next.origin !== origin) throw refused(label, `redirected to another origin (${next.origin})`);
    if (hop >= MAX_REDIRECTS) throw refused(label, `redirected more than ${MAX_REDIRECTS} times`);
    const method = (init.method ?? 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'HEAD' && res.status !== 307 && res.status !== 308) {
      throw refused(label, `answered ${method} with HTTP ${res.status}, which would turn it into a GET`);
    }
    current = next.href;
  }
}

function refused(label: string, what: string): StrataError {
  return new StrataError('untrusted', `${label} ${what}; redirects are followed only within the same origin. Give the final address instead.`);
}

/** The TLS verification error behind a failed fetch (Node: `cause.code`), or null when it is something else. */
export function tlsFailure(e: unknown): string | null {
  for (let c: unknown = e, depth = 0; c !== null && typeof c === 'object' && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT/.test(code)) return code;
  }
  return null;
}

/** The `untrusted` error for a certificate the client does not trust. */
export function untrustedCertificate(label: string, code: string): StrataError {
  return new StrataError(
    'untrusted',
    `The TLS certificate of ${label} is not trusted (${code}). If the server uses your own CA, make it trusted: in Node, NODE_EXTRA_CA_CERTS=/path/to/ca.pem; in a browser, the system's certificate store.`,
  );
}
