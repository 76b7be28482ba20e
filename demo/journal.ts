/**
 * The "Write log" card of the volume demo: turn the volume's write log on and off, add marks,
 * and a time slider over the log (marks as ticks) that moves the block map and a hex view
 * through time; "Restore to here" rolls the live volume to the slider's point.
 *
 * The slider runs from the oldest point the log keeps to its last durable flush, plus one more
 * stop at the right end: the live volume. Dragging it opens a view at that record (debounced;
 * the previous view is closed), reads its map and the chosen bytes. The panel draws into the
 * page's block map through a hook; the page keeps its status line and busy state.
 */
import type { Extent } from '../src/index.js';
import type { Mark, RemotePointView, RemoteVolume, RestoreReport } from '../src/worker/client.js';
import { asText, escapeHtml, formatBytes, hexdump, parseSize } from './format.js';
import { $, errorCode, errorMessage, inputValue, setProgress, setStatus } from './ui.js';

/** Wait this long after the slider stops moving before reading a view. */
const SLIDER_DEBOUNCE_MS = 150;
/** At most this many bytes in the hex view. */
const HEX_MAX = 4096;

export interface JournalHooks {
  /** the page's open volume, if any */
  volume(): RemoteVolume | null;
  /** true while a page action runs (the panel's buttons wait) */
  pageBusy(): boolean;
  /** run a page action: busy state, status line, redraw (which calls `refresh` here) */
  run(label: string, fn: () => Promise<string | void>): Promise<void>;
  /** draw the block map from a view's extents with a caption, or (null) from the live volume */
  drawMap(extents: Extent[] | null, caption: string): Promise<void>;
}

interface LogState {
  oldest: number;
  lastFlush: number;
  marks: Mark[];
}

function time(ms: number): string {
  return new Date(ms).toLocaleTimeString();
}

export class JournalPanel {
  private vol: RemoteVolume | null = null;
  private log: LogState | null = null;
  private view: RemotePointView | null = null;
  /** the slider position shown (null: live) */
  private shownSeq: number | null = null;
  /** bumps with every request to show a point, so a slow answer for an old one is dropped */
  private showToken = 0;
  private debounce = 0;
  private restoring: AbortController | null = null;

  private readonly el = {
    state: $('jl-state'),
    enable: $<HTMLButtonElement>('btn-jl-enable'),
    disable: $<HTMLButtonElement>('btn-jl-disable'),
    label: $<HTMLInputElement>('jl-label'),
    mark: $<HTMLButtonElement>('btn-jl-mark'),
    slider: $<HTMLInputElement>('jl-slider'),
    ticks: $('jl-ticks'),
    at: $('jl-at'),
    offset: $<HTMLInputElement>('jl-offset'),
    length: $<HTMLInputElement>('jl-length'),
    hexAt: $('jl-hex-at'),
    hexLive: $('jl-hex-live'),
    restore: $<HTMLButtonElement>('btn-jl-restore'),
    cancel: $<HTMLButtonElement>('btn-jl-cancel'),
    result: $('jl-result'),
  };

  constructor(private readonly hooks: JournalHooks) {
    const { el } = this;
    el.enable.addEventListener('click', () =>
      void hooks.run('Enable write log', async () => {
        const v = this.writable();
        const st = await v.journal.enable();
        return `Write log on (${st.journal}): every write from now on can be read back at its moment`;
      }),
    );
    el.disable.addEventListener('click', () => {
      if (!confirm('Stop the write log and delete it? The points and marks are gone; the volume keeps its data.')) return;
      void hooks.run('Disable write log', async () => {
        await this.dropView();
        await this.writable().journal.disable();
        this.shownSeq = null;
        return 'Write log off and deleted; its base stays as an ordinary snapshot';
      });
    });
    el.mark.addEventListener('click', () =>
      void hooks.run('Add mark', async () => {
        const label = el.label.value.trim();
        const m = await this.writable().journal.mark(label);
        const next = /^(.*?)(\d+)$/.exec(label);
        el.label.value = next ? `${next[1]}${Number(next[2]) + 1}` : `${label}-2`;
        return `Mark "${m.label}" at record ${m.point} (flushed first, so it is durable)`;
      }),
    );
    el.slider.addEventListener('input', () => {
      this.updateAt();
      clearTimeout(this.debounce);
      this.debounce = window.setTimeout(() => void this.showSlider(), SLIDER_DEBOUNCE_MS);
    });
    for (const input of [el.offset, el.length]) input.addEventListener('change', () => void this.showSlider());
    el.restore.addEventListener('click', () => void this.restore());
    el.cancel.addEventListener('click', () => this.restoring?.abort());
    el.label.addEventListener('input', () => this.updateButtons());
  }

  /** The seq the slider is at, or null at its right end (the live volume). */
  private sliderSeq(): number | null {
    if (!this.log) return null;
    const v = Number(this.el.slider.value);
    return v > this.log.lastFlush ? null : v;
  }

  private writable(): RemoteVolume {
    const v = this.hooks.volume();
    if (!v) throw new Error('no volume is open');
    return v;
  }

  /** The mark whose point is `seq` (the newest such), if any. */
  private markAt(seq: number): Mark | undefined {
    return this.log?.marks.filter((m) => m.point === seq).at(-1);
  }

  /**
   * Reload the log's state (after every page action) and redraw the slider, ticks and view.
   * True when it drew the block map (the volume keeps a log), false when the page should.
   */
  async refresh(): Promise<boolean> {
    const v = this.hooks.volume();
    if (v !== this.vol) {
      // Another volume (or none): the old view closed with its volume.
      this.view = null;
      this.shownSeq = null;
      this.vol = v;
      this.el.result.textContent = '–';
    }
    const st = v ? await v.journal.status() : null;
    if (!v || !st) {
      await this.dropView();
      this.log = null;
      this.shownSeq = null;
      this.el.state.innerHTML = v ? 'The write log is <b>off</b>: turn it on to keep every write and move through time.' : 'Open a volume.';
      this.el.ticks.innerHTML = '';
      this.el.slider.min = '0';
      this.el.slider.max = '0';
      this.el.slider.value = '0';
      this.el.at.textContent = '–';
      this.el.hexAt.textContent = '–';
      this.el.hexLive.textContent = '–';
      this.updateButtons();
      return false;
    }
    const wasLive = this.log === null || this.sliderSeq() === null;
    const [page, marks] = await Promise.all([v.journal.records(Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER, 1), v.journal.marks()]);
    this.log = { oldest: page.oldest, lastFlush: page.lastFlush, marks };
    const s = this.el.slider;
    const keep = Number(s.value);
    s.min = String(page.oldest);
    s.max = String(page.lastFlush + 1);
    s.value = String(wasLive ? page.lastFlush + 1 : Math.min(keep, page.lastFlush));
    this.el.state.innerHTML =
      `Write log <b>on</b>: ${st.records} records, ${formatBytes(st.bytes)} · ${st.marks} mark${st.marks === 1 ? '' : 's'} · ` +
      `last durable record ${st.lastFlush}${st.failed ? ` · <b>failed</b>: ${escapeHtml(st.failed)}` : ''}`;
    this.renderTicks();
    this.updateAt();
    this.updateButtons();
    await this.show(this.sliderSeq());
    return true;
  }

  private renderTicks(): void {
    const log = this.log!;
    const min = log.oldest;
    const span = Math.max(1, log.lastFlush + 1 - min);
    const list = this.el.ticks;
    list.innerHTML = log.marks
      .map((m, i) => {
        const pct = (100 * (m.point - min)) / span;
        const short = m.label.length > 18 ? `${m.label.slice(0, 16)}…` : m.label;
        return (
          `<li style="left:${pct.toFixed(2)}%"><button class="small tick" data-own data-i="${i}" data-point="${m.point}" ` +
          `title="${escapeHtml(`${m.label}: record ${m.point}, ${time(m.time)}`)}" aria-label="${escapeHtml(`go to mark ${m.label}`)}">${escapeHtml(short)}</button></li>`
        );
      })
      .join('');
    list.querySelectorAll<HTMLButtonElement>('button[data-point]').forEach((b) =>
      b.addEventListener('click', () => {
        this.el.slider.value = b.dataset.point!;
        this.updateAt();
        void this.showSlider();
      }),
    );
    const dl = $('jl-marks');
    dl.innerHTML = log.marks.map((m) => `<option value="${m.point}" label="${escapeHtml(m.label)}"></option>`).join('');
  }

  /** The words next to the slider: where it is. */
  private updateAt(): void {
    const seq = this.sliderSeq();
    if (!this.log) return;
    if (seq === null) {
      this.el.at.textContent = 'live volume (now)';
      this.el.slider.setAttribute('aria-valuetext', 'live volume');
    } else {
      const m = this.markAt(seq);
      const words = seq === this.log.oldest ? `record ${seq}: the base of the log` : `record ${seq}`;
      this.el.at.textContent = m ? `${words} · mark "${m.label}" (${time(m.time)})` : words;
      this.el.slider.setAttribute('aria-valuetext', m ? `record ${seq}, mark ${m.label}` : `record ${seq}`);
    }
    this.updateButtons();
  }

  private async showSlider(): Promise<void> {
    try {
      await this.show(this.sliderSeq());
    } catch (e) {
      setStatus('error', `View at the slider: ${errorMessage(e)}`, errorCode(e));
    }
  }

  /** Show the volume at `seq` (null: live) in the block map and the hex view; closes the previous view. */
  private async show(seq: number | null): Promise<void> {
    const token = ++this.showToken;
    const v = this.vol;
    if (!v) return;
    let view: RemotePointView | null = null;
    let caption = 'live';
    try {
      if (seq !== null) {
        view = await v.journal.view({ seq });
        const rec = (await v.journal.records(seq - 1, seq, 1)).records[0];
        caption = `at record ${seq}${rec ? ` (${rec.kind}, ${time(rec.time)})` : ''}`;
      }
      if (token !== this.showToken) return; // a newer position was asked for
      const old = this.view;
      this.view = view;
      view = null;
      if (old) await old.close().catch(() => {});
      const extents = this.view ? await this.view.map() : null;
      if (token !== this.showToken) return;
      await this.hooks.drawMap(extents, caption);
      await this.showBytes(token);
      if (token !== this.showToken) return;
      this.shownSeq = seq;
      this.el.at.dataset.shown = seq === null ? 'live' : String(seq);
    } finally {
      if (view) await view.close().catch(() => {});
    }
  }

  /** The hex view: the chosen bytes at the slider's point and live, differences marked. */
  private async showBytes(token: number): Promise<void> {
    const v = this.vol;
    if (!v) return;
    const offset = parseSize(inputValue('jl-offset'), 'offset');
    const length = Math.min(parseSize(inputValue('jl-length'), 'length'), HEX_MAX);
    if (offset + length > v.size) throw new Error(`range ${offset}+${length} is beyond the volume's ${formatBytes(v.size)}`);
    const live = await v.read(offset, length);
    const at = this.view ? await this.view.read(offset, length) : live;
    if (token !== this.showToken) return;
    this.el.hexAt.innerHTML = hexdump(at, offset, live);
    this.el.hexLive.innerHTML = hexdump(live, offset, at);
    $('jl-hex-at-text').textContent = asText(at);
    $('jl-hex-live-text').textContent = asText(live);
    $('jl-hex-at-title').textContent = this.view ? `at record ${this.view.seq}` : 'at the slider (live)';
  }

  private async dropView(): Promise<void> {
    this.showToken++;
    const old = this.view;
    this.view = null;
    if (old) await old.close().catch(() => {});
  }

  private async restore(): Promise<void> {
    const seq = this.sliderSeq();
    if (seq === null || !this.log) return;
    const mark = this.markAt(seq);
    if (!mark && !confirm(`Record ${seq} is not a mark: the volume may have been in the middle of a change there. Restore to it anyway?`)) return;
    await this.hooks.run(`Restore to ${mark ? `mark ${mark.label}` : `record ${seq}`}`, async () => {
      const v = this.writable();
      this.restoring = new AbortController();
      this.updateButtons();
      setProgress('jl-progress', 0, 1);
      this.el.result.textContent = 'restoring…';
      let report: RestoreReport;
      try {
        report = await v.journal.restore(mark ? `mark:${mark.label}` : { seq }, {
          force: !mark,
          signal: this.restoring.signal,
          onProgress: (p) => {
            setProgress('jl-progress', p.done, Math.max(1, p.total));
            this.el.result.textContent = `${p.done} of ${p.total} changed blocks rewritten`;
          },
        });
      } catch (e) {
        if (errorCode(e) === 'aborted') this.el.result.textContent = 'restore cancelled: the volume is part way; restore again, or to the undo mark';
        throw e;
      } finally {
        this.restoring = null;
      }
      setProgress('jl-progress', 1, 1);
      // Back to live: the volume now reads as the point did.
      this.el.slider.value = this.el.slider.max;
      this.el.result.innerHTML =
        `Restored to record ${report.to}: ${report.blocks} block${report.blocks === 1 ? '' : 's'} (${formatBytes(report.bytes)}) rewritten. ` +
        `To undo, restore to mark <b class="undo-mark">${escapeHtml(report.undo)}</b> (on the slider).`;
      return `Restored to ${mark ? `mark ${mark.label}` : `record ${seq}`}: ${report.blocks} blocks rewritten; undo mark ${report.undo}`;
    });
  }

  /** Enable what can act now: the log's state, a writable volume, no action running. */
  updateButtons(): void {
    const v = this.hooks.volume();
    const idle = !this.hooks.pageBusy() && this.restoring === null;
    const writable = v !== null && !v.readOnly;
    const on = this.log !== null;
    const { el } = this;
    el.enable.disabled = !idle || !writable || on;
    el.disable.disabled = !idle || !writable || !on;
    el.mark.disabled = !idle || !writable || !on || el.label.value.trim() === '';
    el.slider.disabled = !on || this.restoring !== null;
    el.restore.disabled = !idle || !writable || !on || this.sliderSeq() === null;
    el.cancel.disabled = this.restoring === null;
    for (const b of el.ticks.querySelectorAll<HTMLButtonElement>('button')) b.disabled = this.restoring !== null;
    const seq = this.sliderSeq();
    el.restore.textContent = seq !== null && !this.markAt(seq) ? 'Restore to here (not a mark)…' : 'Restore to here';
  }
}
