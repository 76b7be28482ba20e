/**
 * The resync protocol counts a payload as its bytes, whatever Uint8Array carries it: the
 * WebSocket link delivers a Node Buffer, whose toJSON would otherwise count it as a JSON array
 * of numbers (about 3.5 times its size) in `bytesSent*` and the server's log.
 */
import { describe, expect, it } from 'vitest';
import { wireBytes } from '../../../src/resync/protocol.js';

describe('resync wireBytes', () => {
  it('counts a Buffer payload as its length, like a Uint8Array', () => {
    const bytes = new Uint8Array(1 << 20).fill(200);
    const plain = wireBytes({ t: 'data', id: 7, data: bytes });
    const buffer = wireBytes({ t: 'data', id: 7, data: Buffer.from(bytes) });
    expect(plain).toBe(JSON.stringify({ t: 'data', id: 7 }).length + (1 << 20));
    expect(buffer).toBe(plain);
  });
});
