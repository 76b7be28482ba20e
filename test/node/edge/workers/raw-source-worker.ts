/**
 * A test worker: the edge handler over one raw R2 object (no chunks, no hashing), so the HTTP
 * side (streaming, FixedLengthStream, the Cache API, a read that fails mid-body) can be checked
 * in workerd apart from the published layout. FAIL_AT makes reads touching that offset fail.
 */
import { StrataError } from '../../../../src/errors.ts';
import { createEdgeHandler } from '../../../../src/edge/handler.ts';
import type { VersionSource } from '../../../../src/edge/source.ts';

interface Env {
  BUCKET: { head(key: string): Promise<{ size: number } | null>; get(key: string, o: { range: { offset: number; length: number } }): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null> };
  FAIL_AT?: string;
  PIECE?: string;
}

export default {
  async fetch(request: Request, env: Env, ctx: { waitUntil(p: Promise<unknown>): void }): Promise<Response> {
    const handler = createEdgeHandler({
      pieceBytes: Number(env.PIECE ?? 2 * 1024 * 1024),
      cache: (globalThis as unknown as { caches: { default: never } }).caches.default,
      async open(ref) {
        const head = await env.BUCKET.head('raw.img');
        if (!head || ref.image !== 'raw') throw new StrataError('not-found', 'none');
        const source: VersionSource = {
          contentId: 'e'.repeat(64),
          image: 'raw',
          size: head.size,
          async read(offset, length) {
            const fail = env.FAIL_AT === undefined ? -1 : Number(env.FAIL_AT);
            if (offset <= fail && fail < offset + length) throw new StrataError('checksum-mismatch', 'flipped');
            const o = await env.BUCKET.get('raw.img', { range: { offset, length } });
            return new Uint8Array(await o!.arrayBuffer());
          },
        };
        return source;
      },
    });
    return handler(request, ctx);
  },
};
