/**
 * The benchmark's peer: the least a worker can do to serve a raw image from R2 with ranges.
 * GET /KEY passes the request's Range header to R2 and streams R2's body back (no verification,
 * no chunk lookups). Single ranges only, which is all the benchmark sends.
 */
interface R2Body {
  body: ReadableStream<Uint8Array>;
  size: number;
  range?: { offset?: number; length?: number; suffix?: number };
}
interface Env {
  BUCKET: { get(key: string, options?: { range?: Headers }): Promise<R2Body | null> };
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const key = new URL(request.url).pathname.slice(1);
    const obj = await env.BUCKET.get(key, { range: request.headers });
    if (!obj) return new Response('Not found.\n', { status: 404 });
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream', 'Accept-Ranges': 'bytes' };
    const r = obj.range;
    if (request.headers.has('range') && r && r.offset !== undefined && r.length !== undefined) {
      headers['Content-Range'] = `bytes ${r.offset}-${r.offset + r.length - 1}/${obj.size}`;
      headers['Content-Length'] = String(r.length);
      return new Response(obj.body, { status: 206, headers });
    }
    headers['Content-Length'] = String(obj.size);
    return new Response(obj.body, { status: 200, headers });
  },
};
