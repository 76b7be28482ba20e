import { StrataError } from '../errors.js';
import type { ObjectStore } from '../transfer/object-store.js';
import { openPublishedVersion } from '../transfer/published-version.js';
import { loadKernels } from '../wasm/index.js';
import { createEdgeHandler, type EdgeHandler } from './handler.js';
import type { CacheLike, WaitUntil } from './source.js';
import { createVersionCache } from './version-cache.js';

/**
 * The Cloudflare Workers module around the edge handler. Configuration comes from the worker's
 * environment (wrangler.toml `[vars]` and bindings):
 *   BUCKET            the R2 binding holding the published images (another name: EDGE_BUCKET)
 *   EDGE_BUCKET       the name of that binding, when it is not BUCKET
 *   EDGE_PREFIX       the key prefix the images were published under (default: none)
 *   EDGE_TAG_MAX_AGE  seconds a tag URL may be cached and a tag lookup trusted (default 60)
 *   EDGE_CACHE        "off": do not use the Workers Cache API (default on)
 * Opened versions are kept per isolate; verified byte spans and tag lookups go to caches.default.
 */
export interface EdgeWorkerOptions {
  /**
   * build/kernels.wasm as a compiled module: workerd does not compile WebAssembly from bytes at
   * run time, so the bundler (wrangler's CompiledWasm rule) must import it as a module.
   */
  kernels?: WebAssembly.Module;
  /** the ObjectStore over an R2 binding (the R2 adapter of src/transfer/) */
  objects(bucket: unknown, where: { prefix: string; name: string }): ObjectStore;
}

export interface EdgeWorker {
  fetch(request: Request, env: Record<string, unknown>, ctx?: WaitUntil): Promise<Response>;
}

export function createEdgeWorker(options: EdgeWorkerOptions): EdgeWorker {
  let state: { env: Record<string, unknown>; handler: EdgeHandler } | undefined;
  let kernels: Promise<void> | undefined;

  function setup(env: Record<string, unknown>): EdgeHandler {
    if (state?.env === env) return state.handler;
    const bindingName = typeof env.EDGE_BUCKET === 'string' && env.EDGE_BUCKET !== '' ? env.EDGE_BUCKET : 'BUCKET';
    const bucket = env[bindingName];
    if (bucket === undefined || bucket === null) {
      throw new StrataError('invalid-argument', `The worker has no R2 binding named ${bindingName}: add [[r2_buckets]] binding = "${bindingName}" to wrangler.toml (or set EDGE_BUCKET to the binding's name).`);
    }
    const prefix = typeof env.EDGE_PREFIX === 'string' ? env.EDGE_PREFIX : '';
    const tagMaxAge = typeof env.EDGE_TAG_MAX_AGE === 'string' && /^[0-9]{1,7}$/.test(env.EDGE_TAG_MAX_AGE) ? Number(env.EDGE_TAG_MAX_AGE) : 60;
    const objects = options.objects(bucket, { prefix, name: bindingName });
    const cache = env.EDGE_CACHE === 'off' ? undefined : defaultCache();
    const handler = createEdgeHandler({
      open: createVersionCache({
        open: (ref, signal) => openPublishedVersion(objects, 'contentId' in ref ? { contentId: ref.contentId } : ref, signal ? { signal } : {}),
        tagMaxAgeMs: tagMaxAge * 1000,
      }),
      tagMaxAge,
      ...(cache ? { cache, cacheScope: `${bindingName}/${prefix}` } : {}),
      onError: (e) => console.error(`stratadisk edge: ${e instanceof Error ? e.message : String(e)}`),
      onCacheError: (e) => console.warn(`stratadisk edge: cache put refused: ${e instanceof Error ? e.message : String(e)}`),
    });
    state = { env, handler };
    return handler;
  }

  return {
    async fetch(request, env, ctx) {
      let handler: EdgeHandler;
      try {
        kernels ??= loadKernels(options.kernels).catch((e: unknown) => {
          kernels = undefined;
          throw e;
        });
        await kernels;
        handler = setup(env);
      } catch (e) {
        console.error(`stratadisk edge: ${e instanceof Error ? e.message : String(e)}`);
        return new Response('The edge worker is not set up: see its log.\n', { status: 500, headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' } });
      }
      return handler(request, ctx);
    },
  };
}

function defaultCache(): CacheLike | undefined {
  const caches = (globalThis as { caches?: { default?: CacheLike } }).caches;
  return caches?.default;
}
