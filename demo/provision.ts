/**
 * Copy-on-read controls shared by both demo pages (the volume demo and the v86 VM): for a volume
 * built on a remote image, how much is local / remote / modified, a stream job with a progress
 * bar, pause/resume and cancel, and reset to the image. The page keeps its own volume and status
 * line; this panel draws into a container of its own and runs the stream without marking the
 * page busy (the volume, or the guest on it, stays usable while the rest is fetched).
 */
import type { VolumeInfo } from '../src/index.js';
import type { RemoteVolume } from '../src/worker/client.js';
import { escapeHtml, formatBytes } from './format.js';
import { errorCode, errorMessage, setProgress, setStatus } from './ui.js';

export interface ProvisionHooks {
  /** the page's open volume, if any */
  volume(): RemoteVolume | null;
  /** reset the volume to its image (the page stops/flushes what uses it first) */
  reset(): Promise<void>;
  /** called after each progress event (throttled by the caller if needed) and when a stream ends */
  changed(): void;
}

interface Streaming {
  abort: AbortController;
  pause?: () => Promise<boolean>;
  resume?: () => Promise<boolean>;
  paused: boolean;
}

/** A block count as a share of the image. */
function share(bytes: number, total: number): string {
  return total > 0 ? `${((100 * bytes) / total).toFixed(1)}%` : '–';
}

export class ProvisionPanel {
  private streaming: Streaming | null = null;
  private readonly el: {
    figures: HTMLElement;
    result: HTMLElement;
    stream: HTMLButtonElement;
    pause: HTMLButtonElement;
    cancel: HTMLButtonElement;
    reset: HTMLButtonElement;
    rate: HTMLInputElement;
  };

  constructor(private readonly root: HTMLElement, private readonly hooks: ProvisionHooks) {
    root.innerHTML =
      '<div id="cor-figures" class="info">–</div>' +
      '<div class="row buttons">' +
      '<label>Rate limit <input id="cor-rate" size="5" placeholder="none" spellcheck="false" /> MB/s</label>' +
      '<button id="cor-stream" class="primary" data-own>Stream the rest</button>' +
      '<button id="cor-pause" data-own disabled>Pause</button>' +
      '<button id="cor-cancel" data-own disabled>Cancel</button>' +
      '<button id="cor-reset" class="danger" data-own>Reset to image</button>' +
      '</div>' +
      '<progress id="cor-progress" value="0" max="1"></progress>' +
      '<div id="cor-result" class="info">–</div>';
    const q = <T extends HTMLElement>(id: string) => root.querySelector<T>(`#${id}`)!;
    this.el = {
      figures: q('cor-figures'),
      result: q('cor-result'),
      stream: q('cor-stream'),
      pause: q('cor-pause'),
      cancel: q('cor-cancel'),
      reset: q('cor-reset'),
      rate: q('cor-rate'),
    };
    root.hidden = true;
    this.el.stream.addEventListener('click', () => void this.stream());
    this.el.pause.addEventListener('click', () => void this.togglePause());
    this.el.cancel.addEventListener('click', () => this.streaming?.abort.abort());
    this.el.reset.addEventListener('click', () => void this.reset());
  }

  /** Show the figures of `info` (hidden when the volume has no remote image). */
  show(info: VolumeInfo | null): void {
    const r = info?.remote;
    this.root.hidden = !r;
    if (!r || !info) return;
    const bs = info.blockSize;
    const modified = r.modifiedBlocks * bs;
    this.el.figures.innerHTML =
      `image <code>${escapeHtml(r.url)}</code> (${formatBytes(r.imageBytes)}${r.etag ? `, ETag ${escapeHtml(r.etag)}` : ''})<br>` +
      `<b data-fig="local">local ${formatBytes(r.localBytes)}</b> (${share(r.localBytes, r.imageBytes)}) · ` +
      `<b data-fig="remote">remote ${formatBytes(r.remoteBytes)}</b> · ` +
      `fetched clean ${r.cleanBlocks} block(s) · <b data-fig="modified">modified ${r.modifiedBlocks} block(s)</b> (${formatBytes(modified)}) · ` +
      `${r.http.requests} request(s), ${formatBytes(r.http.bytes)} fetched this session`;
    this.root.dataset.remoteBytes = String(r.remoteBytes);
    this.root.dataset.localBytes = String(r.localBytes);
    this.root.dataset.modifiedBlocks = String(r.modifiedBlocks);
    this.buttons();
  }

  /** Whether a stream job runs (the page keeps its own buttons usable meanwhile). */
  get running(): boolean {
    return this.streaming !== null;
  }

  private buttons(): void {
    const s = this.streaming;
    this.el.stream.disabled = s !== null || !this.hooks.volume() || this.hooks.volume()!.readOnly;
    this.el.reset.disabled = s !== null || !this.hooks.volume() || this.hooks.volume()!.readOnly;
    this.el.pause.disabled = s === null;
    this.el.cancel.disabled = s === null;
    this.el.pause.textContent = s?.paused ? 'Resume' : 'Pause';
    this.root.dataset.streaming = s === null ? 'no' : s.paused ? 'paused' : 'yes';
  }

  private async stream(): Promise<void> {
    const v = this.hooks.volume();
    if (!v || this.streaming) return;
    const rateText = this.el.rate.value.trim();
    const rate = rateText === '' ? undefined : Number(rateText) * 1e6;
    if (rate !== undefined && !(rate > 0)) {
      setStatus('error', `rate limit "${rateText}" is not a positive number of MB/s`, 'invalid-argument');
      return;
    }
    const s: Streaming = { abort: new AbortController(), paused: false };
    this.streaming = s;
    this.buttons();
    setProgress('cor-progress', 0, 1);
    this.el.result.textContent = 'streaming…';
    setStatus('busy', 'Stream: fetching the rest of the image…');
    const t0 = performance.now();
    try {
      await v.stream({
        signal: s.abort.signal,
        rateLimit: rate,
        control: (c) => Object.assign(s, c),
        onProgress: (e) => {
          if (this.streaming !== s) return; // a late event after the outcome was shown
          setProgress('cor-progress', e.done, Math.max(1, e.total));
          this.el.result.textContent = `${s.paused ? 'paused' : 'streaming'}: ${formatBytes(e.done)} of ${formatBytes(e.total)}`;
          this.hooks.changed();
        },
      });
      setProgress('cor-progress', 1, 1);
      const secs = (performance.now() - t0) / 1000;
      this.el.result.textContent = `done in ${secs.toFixed(1)} s: every block is local; the volume works offline`;
      setStatus('ok', 'Stream done: the volume works without the image server now');
    } catch (e) {
      const code = errorCode(e);
      this.el.result.textContent = code === 'aborted' ? 'stream cancelled: what was fetched is kept; stream again to fetch the rest' : `stream failed: ${errorMessage(e)}`;
      setStatus('error', `Stream: ${errorMessage(e)}`, code);
    } finally {
      this.streaming = null;
      this.buttons();
      this.hooks.changed();
    }
  }

  private async togglePause(): Promise<void> {
    const s = this.streaming;
    if (!s) return;
    s.paused = !s.paused;
    this.buttons();
    await (s.paused ? s.pause?.() : s.resume?.());
    this.el.result.textContent = s.paused ? `paused: ${this.el.result.textContent?.replace(/^\w+: /, '')}` : 'streaming…';
  }

  private async reset(): Promise<void> {
    if (!this.hooks.volume() || this.streaming) return;
    setStatus('busy', 'Reset: dropping the volume’s changes…');
    try {
      await this.hooks.reset();
      this.el.result.textContent = 'reset: the volume reads as the image again (fetched blocks are kept)';
      setStatus('ok', 'Reset to the image: modified blocks dropped, fetched blocks kept');
    } catch (e) {
      setStatus('error', `Reset: ${errorMessage(e)}`, errorCode(e));
    } finally {
      this.hooks.changed();
    }
  }
}
