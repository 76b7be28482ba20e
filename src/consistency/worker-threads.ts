/**
 * Node worker_threads transport. The host side gives each worker its own MessageChannel (so the
 * worker's parentPort stays free for the application); the worker joins with the port it was
 * handed. A worker that exits or crashes closes its port, which drops it from the group.
 *
 * ```ts
 * // main thread (the host)
 * const worker = new Worker(file);
 * attachWorker(host, worker);              // posts { type: 'stratadisk:group', port }
 * // worker
 * const participant = await joinFromParent({ name: 'w1', callbacks });
 * ```
 */
import { MessageChannel, parentPort, type MessagePort, type Worker } from 'node:worker_threads';
import { StrataError } from '../errors.js';
import type { GroupHost } from './host.js';
import { portLink } from './message-port.js';
import { Participant, type ParticipantOptions } from './participant.js';

/** The message that hands a worker its end of the group channel. */
export interface GroupPortMessage {
  type: 'stratadisk:group';
  port: MessagePort;
}

function isGroupPortMessage(x: unknown): x is GroupPortMessage {
  const m = x as Partial<GroupPortMessage> | null;
  return typeof m === 'object' && m !== null && m.type === 'stratadisk:group' && typeof m.port === 'object' && m.port !== null;
}

/** Connect `worker` to `host` over a fresh channel; the worker's exit drops it from the group. */
export function attachWorker(host: GroupHost, worker: Worker): void {
  const { port1, port2 } = new MessageChannel();
  const link = portLink(port1);
  host.attach(link);
  // A worker that dies closes port2, but say so at once rather than at garbage collection.
  worker.once('exit', () => link.close());
  worker.postMessage({ type: 'stratadisk:group', port: port2 } satisfies GroupPortMessage, [port2]);
}

/** In a worker: wait for the group channel from the parent (see attachWorker), then join. */
export function joinFromParent(options: ParticipantOptions): Promise<Participant> {
  const parent = parentPort;
  if (!parent) return Promise.reject(new StrataError('unsupported', 'joinFromParent() runs inside a worker_threads Worker; on the main thread use attachWorker().'));
  return new Promise((resolve) => {
    const onMessage = (m: unknown) => {
      if (!isGroupPortMessage(m)) return;
      parent.off('message', onMessage);
      resolve(new Participant(portLink(m.port), options));
    };
    parent.on('message', onMessage);
  });
}
