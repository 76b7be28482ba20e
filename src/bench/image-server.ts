import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small HTTP server of one raw image, with range requests, ETag/Last-Modified and CORS (so a
 * page under COEP `require-corp` may read it), for the provisioning benchmark and the tests.
 * Faults on demand: slow answers, connections cut mid-body, the image replaced mid-way, 200
 * instead of 206, and a hook that answers any request its own way (the fuzz test).
 */
export interface ImageServerOptions {
  /** wait this long before each answer */
  delayMs?: number;
  /** cut every n-th range answer after half of its body */
  dropEvery?: number;
  /** answer ranges with 200 and the whole image */
  ignoreRange?: boolean;
  /** send no ETag (validators are then Last-Modified only) */
  noEtag?: boolean;
  /** answer a range request only once the promise this returns (if any) settles (tests: a stalled read) */
  gate?: (range: { first: number; last: number }) => Promise<void> | undefined;
  /** take a request first; return true when it was answered */
  intercept?: (req: IncomingMessage, res: ServerResponse, range: { first: number; last: number } | null) => boolean;
}

export interface ImageServer {
  url: string;
  /** range requests answered (206 or otherwise), not counting preflights */
  requests: number;
  /** CORS preflights answered (OPTIONS) */
  preflights: number;
  /** body bytes sent */
  bytes: number;
  /** [first, last] of each range request */
  log: [number, number][];
  /** replace the image: a new version with a new ETag and Last-Modified */
  setImage(image: Uint8Array): void;
  options: ImageServerOptions;
  close(): Promise<void>;
}

const CORS = {
  'Access-Control-Allow-Origin': '*',
  // v86's own HTTP disk sends X-Accept-Encoding with its range requests
  'Access-Control-Allow-Headers': 'Range, X-Accept-Encoding',
  'Access-Control-Expose-Headers': 'Content-Range, Content-Length, ETag, Last-Modified, Accept-Ranges',
  // The test page runs under COEP require-corp: a cross-origin response needs this to be readable.
  'Cross-Origin-Resource-Policy': 'cross-origin',
};

export async function startImageServer(image: Uint8Array, options: ImageServerOptions = {}, port = 0): Promise<ImageServer> {
  let version = 1;
  let current = image;
  let modified = new Date(Date.UTC(2026, 0, 1)).toUTCString();
  const state: ImageServer = {
    url: '',
    requests: 0,
    preflights: 0,
    bytes: 0,
    log: [],
    options,
    setImage(next: Uint8Array) {
      current = next;
      version++;
      modified = new Date(Date.UTC(2026, 0, 1) + version * 1000).toUTCString();
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
  const server: Server = createServer((req, res) => {
    if (req.method === 'OPTIONS') {
      state.preflights++;
      res.writeHead(204, { ...CORS, 'Access-Control-Allow-Methods': 'GET, HEAD', 'Access-Control-Max-Age': '600' });
      res.end();
      return;
    }
    state.requests++;
    const range = parseRange(req.headers.range, current.length);
    if (range) state.log.push([range.first, range.last]);
    const answer = () => {
      if (options.intercept?.(req, res, range)) return;
      const body = current;
      const headers: Record<string, string> = { ...CORS, 'Accept-Ranges': 'bytes', 'Last-Modified': modified, 'Content-Type': 'application/octet-stream' };
      if (!options.noEtag) headers.ETag = `"v${version}"`;
      if (!range || options.ignoreRange) {
        state.bytes += body.length;
        res.writeHead(200, { ...headers, 'Content-Length': String(body.length) });
        res.end(body);
        return;
      }
      if (range.first >= body.length) {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${body.length}` });
        res.end();
        return;
      }
      const last = Math.min(range.last, body.length - 1);
      const part = body.subarray(range.first, last + 1);
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${range.first}-${last}/${body.length}`, 'Content-Length': String(part.length) });
      if (options.dropEvery && state.requests % options.dropEvery === 0 && part.length > 1) {
        const half = part.subarray(0, part.length >> 1);
        state.bytes += half.length;
        res.write(half, () => res.destroy());
        return;
      }
      state.bytes += part.length;
      res.end(part);
    };
    const held = range ? options.gate?.(range) : undefined;
    if (held) void held.then(answer, answer);
    else if (options.delayMs) setTimeout(answer, options.delayMs);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/image.raw`;
  return state;
}

function parseRange(h: string | undefined, size: number): { first: number; last: number } | null {
  const m = h ? /^bytes=(\d+)-(\d*)$/.exec(h) : null;
  if (!m) return null;
  const first = Number(m[1]);
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  return last >= first ? { first, last } : null;
}
