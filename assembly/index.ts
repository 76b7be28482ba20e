// The kernels module: flat exports over pointers and lengths into linear memory.
// src/wasm/ is the only caller; it validates arguments once and owns all memory above heap_base.
export { xxh3_64, xxh3_128, xxh3_stream_begin, xxh3_stream_blocks, xxh3_stream_end, xxh3_segments64, xxh3_segments128 } from './xxh3';
export { xxh64, xxh64_stream_begin, xxh64_stream_stripes, xxh64_stream_end } from './xxh64';
export { blake3_hash, blake3_chunks, blake3_stream_begin, blake3_stream_subtrees, blake3_stream_end } from './blake3';
export { scan_blocks } from './scan';
export { verify_blocks } from './verify';
export { copy_runs, is_zero, equal_bytes, equal_blocks } from './copy';
export {
  zero_page, bits_set, bits_clear, bits_count, bits_next_set, bits_next_clear, bits_op,
  resolve_page, resolve_runs_page,
} from './bitmap';

/** First free byte after static data; src/wasm/ manages everything above it. */
export function heap_base(): usize {
  return __heap_base;
}

