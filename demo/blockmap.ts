/**
 * The block map: one canvas cell per block (or per group of blocks on big volumes), coloured by
 * the layer that owns it. A grouped cell shows the layer holding most of its data (paler when
 * the cell is only partly written), else zero, else unallocated.
 */
import type { Extent, VolumeInfo } from '../src/index.js';
import { escapeHtml, formatBytes } from './format.js';

/** Distinct, readable colours for layers; the base gets the first. */
const PALETTE = ['#2f6fde', '#e8833a', '#2aa876', '#b84fc9', '#d9434e', '#1fa3b8', '#8a6d3b', '#6f7cf0', '#c2b11f', '#e05fa0'];
export const ZERO_COLOUR = '#b9c0cc';
export const EMPTY_COLOUR = '#eef0f3';
/** Blocks of a remote image not fetched yet (copy on read): still on the image server. */
export const REMOTE_COLOUR = '#f3d9a4';
/** The chain id the engine gives a volume's remote image. */
const REMOTE_LAYER = 'remote';
const GRID_COLOUR = '#ffffff';
/** Legend words for owners that are not layers of the chain. */
const OTHER_OWNERS: Record<string, string> = { journal: 'journal (written in the log up to this point)' };

/** At most this many cells; bigger volumes group blocks per cell. */
const MAX_CELLS = 4096;
const COLUMNS = 128;

export interface MapLegendEntry {
  key: string;
  label: string;
  colour: string;
  blocks: number;
}

export interface DrawnMap {
  cells: number;
  blocksPerCell: number;
  legend: MapLegendEntry[];
}

/** Colour of a layer: by its place among all of the volume's layers (stable across redraws). */
export function layerColour(info: VolumeInfo, layer: string): string {
  if (layer === REMOTE_LAYER) return REMOTE_COLOUR;
  const ids = info.layers.map((l) => l.id).sort();
  const i = ids.indexOf(layer);
  return PALETTE[(i < 0 ? ids.length : i) % PALETTE.length]!;
}

export function drawBlockMap(canvas: HTMLCanvasElement, info: VolumeInfo, extents: Extent[]): DrawnMap {
  const blocks = Math.ceil(info.size / info.blockSize);
  const blocksPerCell = Math.max(1, Math.ceil(blocks / MAX_CELLS));
  const cells = Math.ceil(blocks / blocksPerCell);
  const cellBytes = blocksPerCell * info.blockSize;

  // Bytes per owner key in each cell; keys: layer id, 'zero', 'empty'.
  const weights: Map<string, number>[] = Array.from({ length: cells }, () => new Map());
  const blocksByKey = new Map<string, number>();
  for (const e of extents) {
    const key = !e.present ? 'empty' : e.zero ? 'zero' : (e.layer ?? 'empty');
    blocksByKey.set(key, (blocksByKey.get(key) ?? 0) + e.length / info.blockSize);
    const end = e.start + e.length;
    for (let c = Math.floor(e.start / cellBytes); c < cells && c * cellBytes < end; c++) {
      const overlap = Math.min(end, (c + 1) * cellBytes) - Math.max(e.start, c * cellBytes);
      const w = weights[c]!;
      w.set(key, (w.get(key) ?? 0) + overlap);
    }
  }

  const columns = Math.min(COLUMNS, cells);
  const rows = Math.ceil(cells / columns);
  // Fit the card's width exactly (no CSS stretching, which blurs the grid); cells at most 24 px.
  canvas.style.aspectRatio = '';
  canvas.style.width = '100%';
  const available = canvas.clientWidth || 960;
  const cellCss = Math.max(2, Math.min(24, available / columns));
  const dpr = globalThis.devicePixelRatio || 1;
  canvas.style.width = `${cellCss * columns}px`;
  canvas.style.height = `${cellCss * rows}px`;
  canvas.width = Math.round(cellCss * columns * dpr);
  canvas.height = Math.round(cellCss * rows * dpr);
  const cell = cellCss * dpr; // device pixels, fractional: edges are rounded per cell
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = GRID_COLOUR;
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const gap = cellCss >= 6 ? Math.max(1, Math.round(dpr)) : 0;
  const edge = (i: number) => Math.round(i * cell);
  for (let c = 0; c < cells; c++) {
    // Any data wins (so a single written block in a big group stays visible): the layer holding
    // most of the cell's data bytes; else zero if any; else unallocated. Paler = partly filled.
    let best = 'empty';
    let bestWeight = 0;
    let dataBytes = 0;
    let zeroBytes = 0;
    for (const [key, weight] of weights[c]!) {
      if (key === 'zero') zeroBytes += weight;
      else if (key !== 'empty') {
        dataBytes += weight;
        if (weight > bestWeight) {
          best = key;
          bestWeight = weight;
        }
      }
    }
    const col = c % columns;
    const row = Math.floor(c / columns);
    const x = edge(col);
    const y = edge(row);
    const w = edge(col + 1) - x - gap;
    const h = edge(row + 1) - y - gap;
    ctx.fillStyle = EMPTY_COLOUR;
    ctx.fillRect(x, y, w, h);
    if (dataBytes === 0 && zeroBytes === 0) continue;
    const filled = dataBytes > 0 ? dataBytes : zeroBytes;
    ctx.globalAlpha = blocksPerCell === 1 ? 1 : 0.45 + 0.55 * Math.min(1, filled / cellBytes);
    ctx.fillStyle = dataBytes > 0 ? layerColour(info, best) : ZERO_COLOUR;
    ctx.fillRect(x, y, w, h);
    ctx.globalAlpha = 1;
  }

  const snapshotsByLayer = new Map<string, string[]>();
  for (const s of info.snapshots) snapshotsByLayer.set(s.layer, [...(snapshotsByLayer.get(s.layer) ?? []), s.name]);
  const legend: MapLegendEntry[] = [];
  // Chain is listed active first or base first depending on the engine; show base -> active.
  const chain = [...info.chain];
  if (chain[0] === info.active.layer) chain.reverse();
  // A volume on a remote image: its root layer holds the blocks fetched clean (local), the
  // image itself is the bottom of every chain (remote), layers above hold modified blocks.
  const cacheLayer = info.remote ? chain.find((id) => id !== REMOTE_LAYER) : undefined;
  if (info.remote) legend.push({ key: REMOTE_LAYER, label: 'remote: on the image server, not fetched yet', colour: REMOTE_COLOUR, blocks: blocksByKey.get(REMOTE_LAYER) ?? 0 });
  for (const id of chain) {
    if (id === REMOTE_LAYER) continue;
    const names = snapshotsByLayer.get(id);
    const role = id === info.active.layer ? 'active' : names ? `snapshot ${names.join(', ')}` : 'sealed';
    const label = id === cacheLayer ? `${id} (local: fetched from the image, clean)` : `${id} (${role}${info.remote ? ', modified' : ''})`;
    legend.push({ key: id, label, colour: layerColour(info, id), blocks: blocksByKey.get(id) ?? 0 });
  }
  // Owners outside the chain: a view of the write log marks the blocks the log decides at its point.
  for (const [key, blocks] of blocksByKey) {
    if (key === 'zero' || key === 'empty' || key === REMOTE_LAYER || chain.includes(key)) continue;
    legend.push({ key, label: OTHER_OWNERS[key] ?? key, colour: layerColour(info, key), blocks });
  }
  legend.push({ key: 'zero', label: 'zero', colour: ZERO_COLOUR, blocks: blocksByKey.get('zero') ?? 0 });
  legend.push({ key: 'empty', label: 'unallocated', colour: EMPTY_COLOUR, blocks: blocksByKey.get('empty') ?? 0 });
  return { cells, blocksPerCell, legend };
}

export function renderLegend(list: HTMLElement, map: DrawnMap, blockSize: number): void {
  list.innerHTML = map.legend
    .map(
      (e) =>
        `<li data-key="${escapeHtml(e.key)}"><span class="swatch" style="background:${e.colour}"></span>${escapeHtml(e.label)} ` +
        `<span class="muted">${Math.ceil(e.blocks)} block${Math.ceil(e.blocks) === 1 ? '' : 's'} · ${formatBytes(Math.ceil(e.blocks * blockSize))}</span></li>`,
    )
    .join('');
}

/** Clears the canvas to the "no volume" look. */
export function clearBlockMap(canvas: HTMLCanvasElement, legend: HTMLElement): void {
  canvas.style.width = '100%';
  canvas.style.height = '';
  canvas.style.aspectRatio = '8 / 1';
  canvas.width = 960;
  canvas.height = 120;
  const ctx = canvas.getContext('2d')!;
  ctx.fillStyle = '#ffffff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#9aa3b5';
  ctx.font = '16px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.fillText('open or create a volume to see its block map', canvas.width / 2, canvas.height / 2);
  legend.innerHTML = '';
}
