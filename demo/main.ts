/**
 * The stratadisk demo: a volume in OPFS or IndexedDB, run by the engine inside a dedicated Web
 * Worker and driven from this page through StrataClient. Every change redraws the block map.
 */
import type { Extent, SnapshotInfo, VolumeInfo } from '../src/index.js';
import { StrataClient, type BackendSpec, type RemoteVolume } from '../src/worker/client.js';
import { clearBlockMap, drawBlockMap, layerColour, renderLegend } from './blockmap.js';
import { asText, escapeHtml, formatBytes, formatTime, hexdump, parseSize } from './format.js';
import { checkVolumeName, forgetVolume, loadKnown, rememberVolume, volumePath, type DemoBackend, type KnownVolume } from './known.js';
import { chunks, parseByte, randomBlockIndexes, randomBytes } from './patterns.js';
import { JournalPanel } from './journal.js';
import { ProvisionPanel } from './provision.js';
import { $, errorCode, errorMessage, inputValue, setProgress, setStatus } from './ui.js';

/** Bytes per write when streaming a file or filling a range. */
const WRITE_CHUNK = 1 << 20;
const BACKEND_LABEL: Record<DemoBackend, string> = { opfs: 'OPFS', idb: 'IndexedDB', memory: 'worker memory' };

const worker = new Worker(new URL('../src/worker/entry.ts', import.meta.url), { type: 'module' });
const client = StrataClient.connect(worker);
worker.addEventListener('error', (e) => {
  setStatus('error', `The worker failed: ${e.message || 'it could not start or crashed'}; reload the page.`, 'worker');
});

interface Current {
  backend: DemoBackend;
  name: string;
  volume: RemoteVolume;
}
let current: Current | null = null;
let busy = 0;
let checkAbort: AbortController | null = null;
/** the running mirror job: its cancel and pause/resume */
let job: { abort: AbortController; pause?: () => Promise<boolean>; resume?: () => Promise<boolean>; paused: boolean } | null = null;
/** The spec that the last failed writable open was for, so the status line can offer read-only. */
let lockedSpec: KnownVolume | null = null;
let lastInfo: VolumeInfo | null = null;

function spec(backend: DemoBackend, name: string): BackendSpec {
  return { backend, path: volumePath(name) };
}

function selected(): KnownVolume {
  return { backend: inputValue('backend') as DemoBackend, name: checkVolumeName(inputValue('vol-name')) };
}

/** Enables buttons by what they need (a volume, a writable volume) and whether work is under way. */
function updateButtons(): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>('button')) {
    if (b.id === 'btn-check-cancel' || b.id === 'btn-job-pause' || b.id === 'btn-job-cancel' || b.dataset.own !== undefined) continue;
    const needs = b.dataset.needs;
    const ok = needs === 'volume' ? current !== null : needs === 'writable' ? current !== null && !current.volume.readOnly : true;
    b.disabled = busy > 0 || !ok;
  }
  $<HTMLButtonElement>('btn-check-cancel').disabled = checkAbort === null;
  $<HTMLButtonElement>('btn-job-pause').disabled = job === null;
  $<HTMLButtonElement>('btn-job-cancel').disabled = job === null;
  $('btn-job-pause').textContent = job?.paused ? 'Resume' : 'Pause';
  document.body.dataset.busy = busy > 0 ? 'yes' : 'no';
  journal?.updateButtons();
}

/**
 * Runs one user action: shows it as busy, reports its outcome (or its error code) in the status
 * line, and redraws everything that may have changed.
 */
async function action(label: string, fn: () => Promise<string | void>): Promise<void> {
  busy++;
  updateButtons();
  setStatus('busy', `${label}…`);
  $('btn-status-ro').hidden = true;
  try {
    const done = await fn();
    setStatus('ok', done ?? `${label}: done`);
  } catch (e) {
    const code = errorCode(e);
    setStatus('error', `${label}: ${errorMessage(e)}`, code);
    if (code === 'locked' && lockedSpec) $('btn-status-ro').hidden = false;
    console.warn(e);
  } finally {
    busy--;
    await refresh().catch((e) => console.warn('refresh failed', e));
    updateButtons();
  }
}

// ---- volume ---------------------------------------------------------------------------------

async function closeCurrent(): Promise<void> {
  const c = current;
  current = null;
  lastInfo = null;
  if (c) await c.volume.close();
}

async function openSelected(readOnly: boolean, which = selected()): Promise<string> {
  await closeCurrent();
  lockedSpec = readOnly ? null : which;
  const volume = await client.openVolume(spec(which.backend, which.name), { readOnly });
  lockedSpec = null;
  current = { ...which, volume };
  rememberVolume(which);
  return `Opened ${which.name} (${which.backend}${readOnly ? ', read-only' : ''}): ${formatBytes(volume.size)}, ${formatBytes(volume.blockSize)} blocks`;
}

$('btn-create').addEventListener('click', () =>
  action('Create volume', async () => {
    const which = selected();
    const size = parseSize(inputValue('vol-size'), 'size');
    const blockSize = Number(inputValue('vol-block'));
    await closeCurrent();
    const volume = await client.createVolume(spec(which.backend, which.name), { size, blockSize });
    current = { ...which, volume };
    rememberVolume(which);
    return `Created ${which.name} (${which.backend}): ${formatBytes(volume.size)}, ${formatBytes(volume.blockSize)} blocks`;
  }),
);
$('btn-create-image').addEventListener('click', () =>
  action('Create from image', async () => {
    const which = selected();
    const url = inputValue('vol-image').trim();
    if (!/^https?:\/\//.test(url)) throw Object.assign(new Error('give the http(s) URL of a raw disk image'), { code: 'invalid-argument' });
    const blockSize = Number(inputValue('vol-block'));
    await closeCurrent();
    // The size is the image's; nothing is fetched but one byte to pin the image (ETag, size).
    const volume = await client.createVolume(spec(which.backend, which.name), { backing: url, blockSize });
    current = { ...which, volume };
    rememberVolume(which);
    return `Created ${which.name} (${which.backend}) on ${url}: ${formatBytes(volume.size)}, nothing local yet`;
  }),
);
$('btn-open').addEventListener('click', () => action('Open volume', () => openSelected(false)));
$('btn-open-ro').addEventListener('click', () => action('Open read-only', () => openSelected(true)));
$('btn-status-ro').addEventListener('click', () => {
  const which = lockedSpec;
  if (which) void action('Open read-only', () => openSelected(true, which));
});
$('btn-close').addEventListener('click', () =>
  action('Close volume', async () => {
    const name = current?.name;
    await closeCurrent();
    return `Closed ${name}`;
  }),
);
$('btn-delete').addEventListener('click', () =>
  action('Delete volume', async () => {
    const which = selected();
    if (current && current.backend === which.backend && current.name === which.name) await closeCurrent();
    await client.deleteVolume(spec(which.backend, which.name));
    forgetVolume(which);
    return `Deleted ${which.name} (${which.backend})`;
  }),
);

function renderKnown(): void {
  const list = loadKnown();
  const ul = $('known');
  if (list.length === 0) {
    ul.innerHTML = '<li class="none">none yet</li>';
    return;
  }
  ul.innerHTML = list
    .map(
      (v, i) =>
        `<li data-i="${i}" title="select ${escapeHtml(v.name)}"><span class="kind">${v.backend}</span>${escapeHtml(v.name)}` +
        `<button class="small" data-open="${i}" title="open">open</button></li>`,
    )
    .join('');
  ul.querySelectorAll<HTMLElement>('li[data-i]').forEach((li) => {
    const v = list[Number(li.dataset.i)]!;
    li.addEventListener('click', (ev) => {
      $<HTMLSelectElement>('backend').value = v.backend;
      $<HTMLInputElement>('vol-name').value = v.name;
      if ((ev.target as HTMLElement).dataset.open !== undefined) void action('Open volume', () => openSelected(false, v));
    });
  });
}

// ---- writes ---------------------------------------------------------------------------------

function requireWritable(): RemoteVolume {
  if (!current) throw new Error('no volume is open');
  return current.volume;
}

function inRange(v: RemoteVolume, offset: number, length: number): void {
  if (offset + length > v.size) throw new Error(`range ${offset}+${length} is beyond the volume's ${formatBytes(v.size)}`);
}

function showPatternFields(): void {
  const p = inputValue('pattern');
  document.querySelectorAll<HTMLElement>('#card-write label.p').forEach((el) => {
    el.hidden = !el.classList.contains(`p-${p}`);
  });
}
$('pattern').addEventListener('change', showPatternFields);

/** Progress of a pattern write: `done` of `total` units of `unit` bytes. */
function writeProgress(done: number, total: number, unit: number): void {
  setProgress('write-progress', done, total);
  $('write-status').textContent = `${formatBytes(done * unit)} of ${formatBytes(total * unit)}`;
}

$('btn-write').addEventListener('click', () =>
  action('Write pattern', async () => {
    const v = requireWritable();
    const pattern = inputValue('pattern');
    if (pattern === 'random') {
      const count = Number(inputValue('p-count'));
      if (!Number.isInteger(count) || count < 1) throw new Error('blocks: give a whole number ≥ 1');
      const indexes = randomBlockIndexes(Math.floor(v.size / v.blockSize), count);
      for (const [n, i] of indexes.entries()) {
        await v.write(i * v.blockSize, randomBytes(v.blockSize));
        writeProgress(n + 1, indexes.length, v.blockSize);
      }
      return `Wrote ${indexes.length} random blocks (${formatBytes(indexes.length * v.blockSize)})`;
    }
    const offset = parseSize(inputValue('p-offset'), 'offset');
    if (pattern === 'stamp') {
      const text = `${inputValue('p-text')} @ ${new Date().toISOString()}`;
      const bytes = new TextEncoder().encode(text);
      inRange(v, offset, bytes.length);
      await v.write(offset, bytes);
      return `Stamped "${text}" at ${offset}`;
    }
    const length = parseSize(inputValue('p-length'), 'length');
    inRange(v, offset, length);
    if (pattern === 'zero') {
      await v.writeZeroes(offset, length);
      return `Zeroed ${formatBytes(length)} at ${offset}`;
    }
    const byte = parseByte(inputValue('p-byte'));
    for (const c of chunks(offset, length, WRITE_CHUNK)) {
      await v.write(c.offset, new Uint8Array(c.length).fill(byte));
      writeProgress(c.offset + c.length - offset, length, 1);
    }
    return `Filled ${formatBytes(length)} at ${offset} with 0x${byte.toString(16).padStart(2, '0')}`;
  }),
);

$('btn-flush').addEventListener('click', () =>
  action('Flush', async () => {
    await requireWritable().flush();
    return 'Flushed: everything written so far is durable';
  }),
);

$('btn-file').addEventListener('click', () =>
  action('Write file', async () => {
    const v = requireWritable();
    const file = $<HTMLInputElement>('file').files?.[0];
    if (!file) throw new Error('pick a file first');
    const offset = parseSize(inputValue('file-offset'), 'offset');
    inRange(v, offset, file.size);
    const started = performance.now();
    setProgress('write-progress', 0, file.size);
    for (const c of chunks(0, file.size, WRITE_CHUNK)) {
      const data = new Uint8Array(await file.slice(c.offset, c.offset + c.length).arrayBuffer());
      await v.write(offset + c.offset, data);
      setProgress('write-progress', c.offset + c.length, file.size);
      $('write-status').textContent = `${formatBytes(c.offset + c.length)} of ${formatBytes(file.size)}`;
    }
    await v.flush();
    const seconds = (performance.now() - started) / 1000;
    $('write-status').textContent = `${file.name}: ${formatBytes(file.size)} at ${offset} in ${seconds.toFixed(2)} s`;
    return `Wrote ${file.name} (${formatBytes(file.size)}) at ${offset} and flushed`;
  }),
);

// ---- snapshots ------------------------------------------------------------------------------

$('btn-snapshot').addEventListener('click', () =>
  action('Take snapshot', async () => {
    const name = inputValue('snap-name').trim();
    const s = await requireWritable().snapshot(name);
    // Suggest the next name: snap1 -> snap2.
    const m = /^(.*?)(\d+)$/.exec(name);
    $<HTMLInputElement>('snap-name').value = m ? `${m[1]}${Number(m[2]) + 1}` : `${name}-2`;
    return `Snapshot ${s.name} taken (layer ${s.layer})`;
  }),
);

function renderSnapshots(list: SnapshotInfo[], info: VolumeInfo | null): void {
  const body = $('snap-list');
  const readOnly = current?.volume.readOnly ?? true;
  if (list.length === 0) {
    body.innerHTML = '<tr class="empty"><td colspan="4">no snapshots</td></tr>';
  } else {
    body.innerHTML = list
      .map((s) => {
        const swatch = info ? `<span class="swatch" style="background:${layerColour(info, s.layer)}"></span>` : '';
        const dis = readOnly ? ' disabled' : '';
        return (
          `<tr data-snapshot="${escapeHtml(s.name)}"><td>${swatch}${escapeHtml(s.name)}</td><td>${escapeHtml(s.layer)}</td>` +
          `<td>${escapeHtml(formatTime(s.created))}</td><td class="actions">` +
          `<button class="small" data-act="read">read</button> ` +
          `<button class="small" data-act="revert"${dis}>revert</button> ` +
          `<button class="small danger" data-act="delete"${dis}>delete</button></td></tr>`
        );
      })
      .join('');
  }
  body.querySelectorAll<HTMLButtonElement>('button[data-act]').forEach((b) => {
    const name = b.closest('tr')!.dataset.snapshot!;
    b.addEventListener('click', () => {
      const act = b.dataset.act;
      if (act === 'read') {
        $<HTMLSelectElement>('cmp-snap').value = name;
        void action('Read', compare);
      } else if (act === 'revert') {
        void action(`Revert to ${name}`, async () => {
          await requireWritable().revert(name);
          return `Reverted to ${name}: writes since it are gone`;
        });
      } else {
        void action(`Delete snapshot ${name}`, async () => {
          await requireWritable().deleteSnapshot(name);
          return `Deleted snapshot ${name}`;
        });
      }
    });
  });

  const select = $<HTMLSelectElement>('cmp-snap');
  const keep = select.value;
  select.innerHTML = list.map((s) => `<option>${escapeHtml(s.name)}</option>`).join('');
  if (list.some((s) => s.name === keep)) select.value = keep;
}

async function compare(): Promise<string> {
  if (!current) throw new Error('no volume is open');
  const v = current.volume;
  const offset = parseSize(inputValue('cmp-offset'), 'offset');
  const length = Math.min(parseSize(inputValue('cmp-length'), 'length'), 4096);
  inRange(v, offset, length);
  const live = await v.read(offset, length);
  const name = inputValue('cmp-snap');
  let snap: Uint8Array | undefined;
  if (name) {
    const reader = await v.openSnapshot(name);
    try {
      snap = await reader.read(offset, length);
    } finally {
      await reader.close();
    }
  }
  $('cmp-live').innerHTML = hexdump(live, offset, snap);
  $('cmp-live-text').textContent = asText(live);
  $('cmp-snapshot-text').textContent = snap ? asText(snap) : '';
  $('cmp-snap-title').textContent = name ? `snapshot ${name}` : 'snapshot (none)';
  $('cmp-snapshot').innerHTML = snap ? hexdump(snap, offset, live) : '–';
  const differ = snap ? live.some((b, i) => b !== snap![i]) : false;
  return `Read ${length} bytes at ${offset}${name ? `: live and ${name} ${differ ? 'differ' : 'are the same'}` : ''}`;
}
$('btn-compare').addEventListener('click', () => action('Read', compare));

// ---- storage and check ----------------------------------------------------------------------

async function renderStorage(): Promise<void> {
  const s = await client.storage();
  const pct = s.quota > 0 ? (100 * s.usage) / s.quota : 0;
  $('usage-bar').style.width = `${Math.max(pct, s.usage > 0 ? 0.5 : 0)}%`;
  $('usage-text').innerHTML =
    `<b>${formatBytes(s.usage)}</b> used of <b>${s.quota > 0 ? formatBytes(s.quota) : 'unknown'}</b> quota` +
    ` (${pct < 0.01 && pct > 0 ? '<0.01' : pct.toFixed(2)}%) · ${s.persisted ? '<b>persistent</b>' : 'best-effort (may be evicted)'}`;
}

$('btn-storage-refresh').addEventListener('click', () => action('Storage', async () => 'Storage figures refreshed'));
$('btn-persist').addEventListener('click', () =>
  action('Request persistent storage', async () => {
    // Only a page may ask (the worker can only tell whether storage already is persistent).
    const granted = (await navigator.storage?.persist?.()) ?? false;
    const persisted = await client.persist();
    return granted || persisted
      ? 'Persistent storage granted: the browser will not evict this origin'
      : 'Persistent storage not granted (the browser decides: bookmarking or installing the site helps)';
  }),
);

$('btn-check').addEventListener('click', () =>
  action('Check', async () => {
    if (!current) throw new Error('no volume is open');
    checkAbort = new AbortController();
    updateButtons();
    setProgress('check-progress', 0, 1);
    $('check-result').textContent = 'checking…';
    try {
      const report = await current.volume.check({
        signal: checkAbort.signal,
        onProgress: (e) => {
          setProgress('check-progress', e.done, e.total);
          $('check-result').textContent = `checking… ${e.done} of ${e.total} blocks`;
        },
      });
      setProgress('check-progress', 1, 1);
      const summary = `${report.ok ? 'clean' : `${report.problems.length} problem(s)`}: ${report.layers} layers, ${report.blocksChecked} blocks, ${formatBytes(report.bytesChecked)} verified`;
      $('check-result').innerHTML = report.ok
        ? `<b>${escapeHtml(summary)}</b>`
        : `<b>${escapeHtml(summary)}</b><br>` + report.problems.slice(0, 8).map((p) => escapeHtml(`${p.code} in ${p.layer}${p.block !== undefined ? ` block ${p.block}` : ''}: ${p.message}`)).join('<br>');
      if (!report.ok) throw Object.assign(new Error(summary), { code: report.problems[0]!.code });
      return `Check ${summary}`;
    } catch (e) {
      if (errorCode(e) === 'aborted') $('check-result').textContent = 'check cancelled';
      throw e;
    } finally {
      checkAbort = null;
    }
  }),
);
$('btn-check-cancel').addEventListener('click', () => checkAbort?.abort());

// ---- jobs -----------------------------------------------------------------------------------

$('btn-mirror').addEventListener('click', () =>
  action('Mirror', async () => {
    const from = current;
    if (!from) throw new Error('no volume is open');
    const to: DemoBackend = from.backend === 'opfs' ? 'idb' : 'opfs';
    const name = checkVolumeName(`${from.name}-${to}`);
    const rateText = inputValue('job-rate').trim();
    const rate = rateText === '' ? undefined : Number(rateText) * 1e6;
    if (rate !== undefined && !(rate > 0)) throw new Error(`rate limit "${rateText}" is not a positive number of MB/s`);
    job = { abort: new AbortController(), paused: false };
    updateButtons();
    setProgress('job-progress', 0, 1);
    $('job-result').textContent = `mirroring to ${BACKEND_LABEL[to]}…`;
    try {
      const info = await from.volume.mirror(spec(to, name), {
        signal: job.abort.signal,
        rateLimit: rate,
        control: (c) => {
          if (job) Object.assign(job, c);
        },
        onProgress: (i) => {
          if (job === null) return; // a late event (they are not awaited) after the outcome was shown
          setProgress('job-progress', i.progress.done, Math.max(1, i.progress.total));
          $('job-result').textContent = `${i.state}: ${formatBytes(i.progress.done)} of ${formatBytes(i.progress.total)} · ${formatBytes(Math.round(i.progress.rate))}/s`;
        },
      });
      job = null;
      setProgress('job-progress', 1, 1);
      // The handle now reads and writes the copy.
      current = { backend: to, name, volume: from.volume };
      rememberVolume({ backend: to, name }); // never the volume: JSON of its comlink proxy would call the worker
      $('job-result').textContent = `done: ${formatBytes(info.progress.done)} copied; the volume now lives in ${BACKEND_LABEL[to]} as ${name}`;
      return `Mirrored ${from.name} to ${BACKEND_LABEL[to]} (${name}); working on the copy now`;
    } catch (e) {
      job = null;
      if (errorCode(e) === 'aborted') $('job-result').textContent = 'mirror cancelled: the original is untouched, nothing was left behind';
      throw e;
    } finally {
      job = null;
    }
  }),
);
$('btn-job-cancel').addEventListener('click', () => job?.abort.abort());
$('btn-job-pause').addEventListener('click', () => {
  const j = job;
  if (!j) return;
  j.paused = !j.paused;
  void (j.paused ? j.pause?.() : j.resume?.());
  updateButtons();
});

// ---- copy on read ---------------------------------------------------------------------------

let provisionRedraw = 0;
const provision = new ProvisionPanel($('provision'), {
  volume: () => current?.volume ?? null,
  reset: async () => {
    if (!current) throw new Error('no volume is open');
    await current.volume.reset();
  },
  // Progress events come often: redraw the figures and the map at most twice a second.
  changed: () => {
    provisionRedraw ||= window.setTimeout(() => {
      provisionRedraw = 0;
      if (busy === 0) void refresh().catch((e) => console.warn('refresh failed', e));
    }, 500);
  },
});

// ---- write log ------------------------------------------------------------------------------

const journal: JournalPanel = new JournalPanel({
  volume: () => current?.volume ?? null,
  pageBusy: () => busy > 0,
  run: action,
  drawMap: async (extents, caption) => {
    if (!current || !lastInfo) return;
    $('map-when').textContent = caption;
    drawMap(lastInfo, extents ?? (await current.volume.map()));
  },
});

// ---- redraw ---------------------------------------------------------------------------------

async function refresh(): Promise<void> {
  renderKnown();
  const storage = renderStorage();
  const canvas = $<HTMLCanvasElement>('blockmap');
  if (!current) {
    $('vol-info').textContent = 'No volume open.';
    renderSnapshots([], null);
    clearBlockMap(canvas, $('legend'));
    provision.show(null);
    $('map-scale').textContent = '';
    $('map-when').textContent = '';
    await journal.refresh();
    await storage;
    return;
  }
  const v = current.volume;
  const [info, extents, snaps] = await Promise.all([v.info(), v.map(), v.snapshots()]);
  lastInfo = info;
  $('vol-info').innerHTML =
    `<b>${escapeHtml(current.name)}</b> in ${BACKEND_LABEL[current.backend]}` +
    `${v.readOnly ? ' · <b>read-only</b>' : ''} · ${formatBytes(info.size)} · ${formatBytes(info.blockSize)} blocks · ` +
    `${info.chain.length} layer(s) in chain · ${formatBytes(info.allocatedBytes)} allocated · generation ${info.generation}`;
  renderSnapshots(snaps, info);
  provision.show(info);
  // The write log's card draws the map when the volume keeps a log (from a view when its slider
  // is at an earlier point); otherwise the live map is drawn here.
  if (!(await journal.refresh())) {
    drawMap(info, extents);
    $('map-when').textContent = 'live';
  }
  await storage;
}

function drawMap(info: VolumeInfo, extents: Extent[]): void {
  const drawn = drawBlockMap($<HTMLCanvasElement>('blockmap'), info, extents);
  renderLegend($('legend'), drawn, info.blockSize);
  $('map-scale').textContent = `${drawn.cells} cells · ${drawn.blocksPerCell === 1 ? 'one block' : `${drawn.blocksPerCell} blocks`} per cell`;
  $('map-scale').title = drawn.blocksPerCell === 1 ? '' : 'a cell shows the layer with most data in it; paler cells are partly written';
}

window.addEventListener('resize', () => {
  // refresh: the map may show the write log's slider point rather than the live volume
  if (current && lastInfo && busy === 0) void refresh().catch((e) => console.warn('refresh failed', e));
});

// ---- start ----------------------------------------------------------------------------------

/** A hook for tests and the console: the client, the worker and the open volume. */
export interface StrataHook {
  client: StrataClient;
  worker: Worker;
  readonly volume: RemoteVolume | null;
  refresh(): Promise<void>;
  ready: Promise<void>;
}
declare global {
  interface Window {
    __strata?: StrataHook;
  }
}

const ready = (async () => {
  const iso = $('badge-isolated');
  iso.textContent = crossOriginIsolated ? 'cross-origin isolated' : 'not isolated';
  iso.className = `badge ${crossOriginIsolated ? 'ok' : 'warn'}`;
  showPatternFields();
  updateButtons();
  try {
    await refresh();
    $('badge-worker').textContent = 'worker ready';
    $('badge-worker').className = 'badge ok';
    setStatus('info', 'Ready: create or open a volume.');
  } catch (e) {
    $('badge-worker').textContent = 'worker failed';
    $('badge-worker').className = 'badge warn';
    setStatus('error', `Worker: ${errorMessage(e)}`, errorCode(e));
  }
})();

window.__strata = {
  client,
  worker,
  get volume() {
    return current?.volume ?? null;
  },
  refresh,
  ready,
};
