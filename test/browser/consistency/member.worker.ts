/**
 * A ledger writer in a Web Worker that joins a consistency group over a MessagePort handed to it
 * by the page: `{ type: 'join', port, writer, ms, hold, freezeDelayMs }`. Reports `{ type:
 * 'result', ... }` on its own global scope (the group port carries only the protocol).
 */
import { LedgerWriter } from '../../../src/bench/ledger.js';
import { portLink } from '../../../src/consistency/message-port.js';
import { Participant } from '../../../src/consistency/participant.js';
import type { ToHost } from '../../../src/consistency/protocol.js';

interface Join {
  type: 'join';
  port: MessagePort;
  writer: number;
  ms: number;
  hold: boolean;
  snapshotEvery: number;
  /** the freeze callback takes this long (to be caught frozen) */
  freezeDelayMs?: number;
}

self.addEventListener('message', async (ev: MessageEvent<Join>) => {
  if (ev.data?.type !== 'join') return;
  const { port, writer, ms, hold, snapshotEvery, freezeDelayMs } = ev.data;
  const p = new Participant(portLink<ToHost>(port), {
    name: `worker-${writer}`,
    hold,
    callbacks: {
      freeze: async () => {
        self.postMessage({ type: 'freezing' });
        if (freezeDelayMs) await new Promise((r) => setTimeout(r, freezeDelayMs));
      },
    },
  });
  await p.ready;
  self.postMessage({ type: 'ready' });
  const w = new LedgerWriter(writer, p.volume('a'), p.volume('b'));
  const end = performance.now() + ms;
  const requested: string[] = [];
  const failures: string[] = [];
  let next = performance.now() + snapshotEvery;
  while (performance.now() < end) {
    await p.gate.run(() => w.transfer());
    if (performance.now() >= next) {
      next = performance.now() + snapshotEvery;
      try {
        requested.push((await p.requestSnapshot()).id);
      } catch (e) {
        failures.push((e as { code?: string }).code ?? String(e));
      }
    }
  }
  p.close();
  self.postMessage({ type: 'result', transfers: w.seq, requested, failures, seen: p.snapshotsSeen });
});
