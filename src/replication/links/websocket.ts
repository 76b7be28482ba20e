/**
 * Replication over WebSocket: a page (or Node) and a Node server (./websocket-server.ts). Each
 * binary WebSocket message carries exactly one frame of src/consistency/framing.ts; anything
 * else (text, two frames, a cut frame) closes the link. Links are authenticated with the shared
 * token (./auth.ts) and carry heartbeats (./heartbeat.ts), as over TCP.
 *
 * The client uses the platform's WebSocket (browsers, Deno, Node 22+); where there is none
 * (Node 20), or when a CA or server name must be given (only the `ws` package takes them), it
 * loads `ws` with a dynamic import that bundlers leave alone, so `ws` never reaches a browser
 * bundle. `ws://` is refused beyond loopback; `wss://` verifies the server's certificate.
 */
import { StrataError } from '../../errors.js';
import { FrameReader, encodeFrame, MAX_FRAME } from '../../consistency/framing.js';
import { LinkEnd, type Link } from '../../consistency/link.js';
import { secureLink, type LinkSecurityOptions } from './secure.js';
import { hostPort, parseReplicaUrl, refusePlain } from './url.js';

/** What the link needs of a WebSocket: the browser's, Node 22's or the `ws` package's. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (ev: never) => void): void;
  removeEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (ev: never) => void): void;
}

/** The largest WebSocket message a link accepts: one whole frame. */
export const MAX_WS_MESSAGE = 4 + MAX_FRAME;

const OPEN = 1;

function bytesOf(data: unknown): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return undefined;
}

/** A link over an open WebSocket. Malformed input closes it. */
export function webSocketLink<Out extends object = object>(ws: WebSocketLike): Link<Out> {
  const end = new LinkEnd();
  const reader = new FrameReader();
  if (ws.binaryType === 'blob') ws.binaryType = 'arraybuffer';
  const onMessage = (ev: { data: unknown }) => {
    const bytes = bytesOf(ev.data);
    if (!bytes) return finish('the peer sent a message that is not one binary frame', 1003);
    let msgs: unknown[];
    try {
      msgs = reader.push(bytes);
    } catch (e) {
      return finish(e instanceof Error ? e.message : String(e), 1007);
    }
    if (msgs.length !== 1 || reader.pending !== 0) return finish('the peer sent a WebSocket message that is not exactly one frame', 1007);
    end.deliver(msgs[0]);
  };
  const onClose = (ev: { code?: number; reason?: string }) => finish(`the WebSocket closed (code ${ev.code ?? '?'}${ev.reason ? `: ${ev.reason}` : ''})`);
  const onError = (ev: { message?: string; error?: unknown }) => finish(`WebSocket error: ${ev.message ?? (ev.error instanceof Error ? ev.error.message : 'unknown')}`);
  ws.addEventListener('message', onMessage);
  ws.addEventListener('close', onClose);
  ws.addEventListener('error', onError);
  function finish(reason: string, code?: number): void {
    if (!end.end(reason)) return;
    ws.removeEventListener('message', onMessage);
    ws.removeEventListener('close', onClose);
    ws.removeEventListener('error', onError);
    try {
      ws.close(code ?? 1000);
    } catch {
      // already closing
    }
  }
  return {
    send(msg) {
      if (end.closed || ws.readyState !== OPEN) return;
      let frame: Uint8Array;
      try {
        frame = encodeFrame(msg);
      } catch (e) {
        finish(e instanceof Error ? e.message : String(e), 1009);
        return;
      }
      try {
        ws.send(frame);
      } catch (e) {
        finish(`sending failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    },
    listen: (h) => end.listen(h),
    close: () => finish('closed'),
  };
}

export interface ConnectReplicaWsOptions extends LinkSecurityOptions {
  /** PEM CA certificate(s) of the server (Node only; default: the system's) */
  ca?: string | Uint8Array | (string | Uint8Array)[];
  /** the name the server's certificate must carry (Node only; default: the URL's host) */
  servername?: string;
  /** time to open the WebSocket (default 10 s) */
  connectTimeoutMs?: number;
  /** the WebSocket class to use (default: the platform's, else the `ws` package) */
  WebSocket?: new (url: string) => WebSocketLike;
}

type WsPackageCtor = new (url: string, options: Record<string, unknown>) => WebSocketLike;

/** The `ws` package, loaded only where it is needed (Node); bundlers do not follow this import. */
async function loadWsPackage(): Promise<WsPackageCtor> {
  const name = 'ws';
  try {
    const mod = (await import(/* @vite-ignore */ name)) as { WebSocket?: WsPackageCtor; default?: WsPackageCtor };
    const ctor = mod.WebSocket ?? mod.default;
    if (!ctor) throw new Error('no WebSocket export');
    return ctor;
  } catch (e) {
    throw new StrataError('unsupported', `This platform has no WebSocket, and the ws package cannot be loaded (${e instanceof Error ? e.message : String(e)}); a CA or server name can only be given in Node.`, { cause: e });
  }
}

/** Open `ws://host:port/path` (loopback only) or `wss://...`, then authenticate. */
export async function connectReplicaWs<Out = unknown>(url: string, options: ConnectReplicaWsOptions): Promise<Link<Out>> {
  const { scheme, host, port } = parseReplicaUrl(url, ['ws', 'wss']);
  if (scheme === 'ws') refusePlain(host, 'client', 'wss');
  if (typeof options.token !== 'string' || options.token.length < 16) throw new StrataError('invalid-argument', 'Connecting to a replica server needs a token of at least 16 characters (from the environment or a 0600 file).');
  const where = `${scheme}://${hostPort(host, port)}`;
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  let ws: WebSocketLike;
  const Platform = options.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (options.ca !== undefined || options.servername !== undefined || !Platform) {
    const Ws = await loadWsPackage();
    ws = new Ws(url, { ca: options.ca, servername: options.servername, minVersion: 'TLSv1.3', maxPayload: MAX_WS_MESSAGE, perMessageDeflate: false, handshakeTimeout: timeoutMs, followRedirects: false });
  } else {
    ws = new Platform(url);
  }
  ws.binaryType = ws.binaryType === 'blob' ? 'arraybuffer' : ws.binaryType;
  // the link listens from the 'open' event on: the server's first message may come with it
  const raw = await new Promise<Link>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('error', onError);
      ws.removeEventListener('close', onClose);
    };
    const onOpen = () => {
      done();
      resolve(webSocketLink(ws));
    };
    const onError = (ev: { message?: string; error?: unknown }) => {
      done();
      try {
        ws.close();
      } catch {
        // not open
      }
      reject(openError(ev.error ?? ev.message, where));
    };
    const onClose = (ev: { code?: number }) => {
      done();
      reject(new StrataError('io', `The WebSocket to ${where} closed before it opened (code ${ev.code ?? '?'}).`));
    };
    const timer = setTimeout(() => {
      done();
      try {
        ws.close();
      } catch {
        // not open
      }
      reject(new StrataError('timeout', `No WebSocket answer from ${where} within ${timeoutMs} ms.`));
    }, timeoutMs);
    ws.addEventListener('open', onOpen);
    ws.addEventListener('error', onError);
    ws.addEventListener('close', onClose);
  });
  return secureLink<Out>(raw, 'client', options);
}

const UNTRUSTED = /UNABLE_TO_VERIFY|SELF_SIGNED|ISSUER_CERT|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|ALTNAME|CERT_SIGNATURE|CERT_UNTRUSTED|CERT_REJECTED|self[- ]signed|unable to verify|unable to get/i;

function openError(e: unknown, where: string): StrataError {
  const code = (e as { code?: string } | undefined)?.code ?? '';
  const message = e instanceof Error ? e.message : typeof e === 'string' ? e : 'the connection failed';
  if (UNTRUSTED.test(code) || UNTRUSTED.test(message)) return new StrataError('untrusted', `The replica server at ${where} presented a certificate we do not trust (${message}); give the CA that signed it (ca), or the name it carries (servername).`, { cause: e });
  if (code === 'ECONNREFUSED') return new StrataError('not-found', `Nothing listens at ${where}; start the replica server there first.`, { cause: e });
  if (/\b403\b/.test(message)) return new StrataError('permission-denied', `The replica server at ${where} refused the WebSocket (403): a page's origin must be allowed on the server (origins).`, { cause: e });
  if (/\b404\b/.test(message)) return new StrataError('not-found', `The replica server at ${where} has no WebSocket at that path (404).`, { cause: e });
  return new StrataError('io', `Cannot open a WebSocket to ${where}: ${message}`, { cause: e });
}
