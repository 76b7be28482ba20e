/**
 * The v86 demo: a Linux guest (built from Debian packages by .ci/build-guest.sh) whose hard disk
 * is a stratadisk volume in a Web Worker (OPFS, IndexedDB or memory). Serial console, VM
 * snapshots (disk + machine state) with revert, and the live block map while the guest writes.
 */
import { V86 } from 'v86';
import v86WasmUrl from 'v86/build/v86.wasm?url';
import v86PackageJson from 'v86/package.json?raw';
import { StrataClient, type BackendSpec, type RemoteVolume } from '../src/worker/client.js';
import { V86Disk } from '../src/v86/disk-adapter.js';
import { installFlushBarrier } from '../src/v86/flush-barrier.js';
import { fetchGuest, GUEST_READY, guestOptions, type GuestImages } from '../src/v86/guest.js';
import { SerialConsole } from '../src/v86/serial-console.js';
import { MemoryStateStore, OpfsStateStore, type MachineStateStore } from '../src/v86/state-store.js';
import { decodeState, encodeState } from '../src/v86/state-file.js';
import { VmSnapshots, type V86Machine, type VmSnapshotInfo } from '../src/v86/vm-snapshots.js';
import type { Mark } from '../src/worker/client.js';
import { drawBlockMap, renderLegend } from './blockmap.js';
import { ProvisionPanel } from './provision.js';
import { escapeHtml, formatBytes, formatTime } from './format.js';
import { $, errorCode, errorMessage, inputValue, setProgress, setStatus } from './ui.js';

const worker = new Worker(new URL('../src/worker/entry.ts', import.meta.url), { type: 'module' });
const client = StrataClient.connect(worker);

interface Running {
  spec: BackendSpec;
  volume: RemoteVolume;
  disk: V86Disk;
  vm: VmSnapshots;
  emulator: (V86Machine & { destroy(): Promise<void> }) | undefined;
  console: SerialConsole | undefined;
  booted: number;
  /** the disk keeps a write log (marks, rewind) */
  logOn: boolean;
}

let current: Running | undefined;
/** How the next attached disk behaves (tests change it through `window.__vm.configure`). */
let diskConfig: DiskConfig = { barrier: true };
const v86Version = (JSON.parse(v86PackageJson) as { version: string }).version;
let busy = 0;
let images: Promise<GuestImages> | undefined;

function setBusy(delta: number): void {
  busy += delta;
  document.body.dataset.busy = busy > 0 ? 'yes' : 'no';
  for (const b of document.querySelectorAll<HTMLButtonElement>('button')) {
    if (b.dataset.own !== undefined) continue; // the copy-on-read panel's own buttons
    const needs = b.dataset.needs;
    b.disabled =
      busy > 0 ||
      (needs === 'volume' && !current) ||
      (needs === 'vm' && !current?.emulator) ||
      (needs === 'log' && !current?.logOn) ||
      (needs === 'nolog' && (!current || current.logOn)) ||
      (needs === 'rewind' && (!current?.logOn || inputValue('vm-marks') === ''));
  }
}

async function action(what: string, fn: () => Promise<string | void>): Promise<void> {
  setBusy(1);
  setStatus('busy', `${what}…`);
  try {
    const msg = await fn();
    setStatus('ok', msg ?? `${what}: done`);
  } catch (e) {
    console.error(e);
    setStatus('error', `${what}: ${errorMessage(e)}`, errorCode(e));
  } finally {
    setBusy(-1);
  }
}

function loadImages(): Promise<GuestImages> {
  images ??= fetchGuest('./vm-guest/');
  images.catch(() => (images = undefined));
  return images;
}

function specOf(): BackendSpec {
  const backend = inputValue('backend') as BackendSpec['backend'];
  const name = inputValue('vm-name').trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$/.test(name)) throw new Error('Use letters, digits, _ and - for the VM name.');
  return { backend, path: backend === 'idb' ? `stratadisk-vm-${name}` : `vms/${name}` } as BackendSpec;
}

function statesFor(spec: BackendSpec): MachineStateStore {
  // Machine states sit beside the disk: in OPFS for OPFS and IndexedDB disks (they outlive the
  // tab as the disk does), in memory for a memory disk.
  return spec.backend === 'memory' ? new MemoryStateStore() : new OpfsStateStore(`vm-states/${spec.backend}/${spec.path.replace(/\//g, '_')}`);
}

/** Open the disk (creating it on first use) without starting the machine. */
async function attach(): Promise<Running> {
  if (current) return current;
  const spec = specOf();
  let volume: RemoteVolume;
  let created = false;
  try {
    volume = await client.openVolume(spec);
  } catch (e) {
    if (errorCode(e) !== 'not-found') throw e;
    const image = inputValue('vm-image').trim();
    // From an image URL: the disk is the image (its size), read lazily; otherwise an empty disk
    // that the guest formats on first boot.
    volume = image
      ? await client.createVolume(spec, { backing: image, blockSize: 64 * 1024 })
      : await client.createVolume(spec, { size: Number(inputValue('vm-size')) * 2 ** 20, blockSize: 64 * 1024 });
    created = true;
  }
  const info = await volume.info();
  // Over the network read-ahead is paid in bytes: the adapter's 8 MiB sequential window fetched
  // 11–43 MB where the guest read 8.5 MB (test/browser/bench/v86-edge.test.ts); 1 MiB fetched 11 MB.
  const readAhead = info.remote ? { readAheadBytes: 1 << 20 } : {};
  const disk = new V86Disk(volume, { ...readAhead, flushIntervalMs: diskConfig.flushIntervalMs, onError: (e) => setStatus('error', `disk: ${errorMessage(e)}`, errorCode(e)) });
  const logOn = (await volume.journal.status()) !== null;
  current = { spec, volume, disk, vm: new VmSnapshots(volume, disk, statesFor(spec)), emulator: undefined, console: undefined, booted: 0, logOn };
  $('vm-state').textContent = `${created ? 'new' : 'existing'} disk: ${formatBytes(volume.size)} on ${spec.backend}${info.remote ? `, copy on read from ${info.remote.url}` : ''}`;
  await refreshSnapshots();
  await refreshMarks();
  return current;
}

/** Create the emulator on the attached disk; `state` restores a machine instead of booting. */
async function startMachine(r: Running, state?: 'boot' | 'restore'): Promise<void> {
  const img = await loadImages();
  const emu = new V86(guestOptions(img, { wasmPath: v86WasmUrl, hda: r.disk, autostart: state !== 'restore' }) as never) as unknown as V86Machine & {
    destroy(): Promise<void>;
    add_listener(e: string, f: () => void): void;
  };
  // A guest's sync waits for the volume: hooked on load, before the guest's first instruction.
  const barrier = diskConfig.barrier
    ? installFlushBarrier(emu, r.disk, { v86Version, onError: (e) => setStatus('error', `guest flush: ${errorMessage(e)}`, errorCode(e)) })
    : Promise.resolve(undefined);
  const loaded = new Promise<void>((ok) => emu.add_listener('emulator-loaded', () => ok()));
  r.emulator = emu;
  r.vm.attach(emu);
  r.console = new SerialConsole(emu as never, (c) => appendConsole(c));
  r.booted = performance.now();
  try {
    await Promise.all([loaded, barrier]);
  } catch (e) {
    // v86 is not as the barrier was checked against: no guest runs without it.
    await emu.stop();
    r.console.detach();
    await emu.destroy();
    r.emulator = undefined;
    r.console = undefined;
    r.vm.attach(undefined);
    throw e;
  }
  setBusy(0);
}

const consoleText: string[] = [];
let consoleFlush = 0;
function appendConsole(c: string): void {
  if (c === '\r') return;
  consoleText.push(c);
  consoleFlush ||= requestAnimationFrame(() => {
    consoleFlush = 0;
    const el = $('console');
    const text = (el.textContent ?? '') + consoleText.join('').replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
    consoleText.length = 0;
    el.textContent = text.length > 100_000 ? text.slice(-80_000) : text;
    el.scrollTop = el.scrollHeight;
  });
}

async function boot(): Promise<string> {
  const r = await attach();
  if (r.emulator) return 'already running';
  $('console').textContent = '';
  await startMachine(r, 'boot');
  const t0 = performance.now();
  await r.console!.waitFor(GUEST_READY, 900_000);
  await r.console!.waitFor('# ', 60_000);
  $('vm-state').textContent = `running · shell after ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  return 'guest booted: type into the console';
}

async function stop(): Promise<string> {
  const r = current;
  if (!r?.emulator) return 'not running';
  await r.emulator.stop();
  await r.disk.settle();
  await r.disk.flush();
  r.console?.detach();
  await r.emulator.destroy();
  r.emulator = undefined;
  r.console = undefined;
  r.vm.attach(undefined);
  $('vm-state').textContent = 'stopped (disk kept)';
  return 'machine stopped; the disk is flushed';
}

async function snapshot(): Promise<string> {
  const r = await attach();
  const name = inputValue('snap-name').trim();
  const machine = $<HTMLInputElement>('snap-machine').checked && r.emulator !== undefined;
  const { info, mark } = await snapshotAndMark(r, name, machine);
  const next = /^(.*?)(\d+)$/.exec(name);
  if (next) $<HTMLInputElement>('snap-name').value = `${next[1]}${Number(next[2]) + 1}`;
  return `snapshot ${name}: disk${info.machine ? ` + machine state (${formatBytes(info.stateBytes)})` : ' only'}${mark ? `; mark "${mark.label}" in the write log at the same instant` : ''}`;
}

/**
 * A VM snapshot; with the write log on, VmSnapshots marks it `vm:NAME` at the same instant (the
 * machine stays stopped), and the page keeps the same machine state with that mark, so a rewind
 * to the mark restores the disk and the running guest as the snapshot would.
 */
async function snapshotAndMark(r: Running, name: string, machine: boolean): Promise<{ info: VmSnapshotInfo; mark?: Mark }> {
  const emu = r.logOn ? r.emulator : undefined;
  const wasRunning = emu?.is_running() ?? false;
  if (emu && wasRunning) await emu.stop();
  try {
    const info = await r.vm.snapshot(name, { machine });
    if (!r.logOn) return { info };
    const state = info.machine ? await r.vm.states.get(name) : undefined;
    // VmSnapshots marks the disk's log `vm:NAME` itself, while the CPU is stopped; keep the
    // machine state with that mark (a page without it gets a mark of its own)
    const auto = (await r.volume.journal.marks()).filter((m) => m.label === `vm:${name}`).at(-1);
    if (auto) {
      if (state) await r.vm.states.put(markStateName(auto), state);
      return { info, mark: auto };
    }
    const mark = await markDisk(r, name, state);
    return { info, mark };
  } finally {
    if (emu && wasRunning) await emu.run();
    await refreshSnapshots();
    await refreshMarks();
  }
}

// ---- write log: marks and rewind ------------------------------------------------------------

/** Where a mark's machine state is kept: by the mark's own record (labels may repeat). */
function markStateName(m: Mark): string {
  return `+mark+${m.seq}`;
}

/** The guest's buffered writes made durable, then a mark; `state` is kept with it. */
async function markDisk(r: Running, label: string, state?: Uint8Array): Promise<Mark> {
  await r.disk.settle();
  await r.disk.flush();
  const m = await r.volume.journal.mark(label);
  if (state) await r.vm.states.put(markStateName(m), state);
  return m;
}

/** A mark now; with `machine` and a running guest, its machine state too (the CPU waits meanwhile). */
async function markVm(label: string, machine: boolean): Promise<Mark> {
  const r = await attach();
  if (!r.logOn) throw Object.assign(new Error('the disk keeps no write log: turn it on first'), { code: 'not-found' });
  if (!label) throw Object.assign(new Error('give the mark a label'), { code: 'invalid-argument' });
  const emu = machine ? r.emulator : undefined;
  const wasRunning = emu?.is_running() ?? false;
  try {
    if (emu && wasRunning) await emu.stop();
    await r.disk.settle();
    const state = emu ? await encodeState(await emu.save_state()) : undefined;
    return await markDisk(r, label, state);
  } finally {
    if (emu && wasRunning) await emu.run();
    await refreshMarks();
  }
}

async function setLog(on: boolean): Promise<string> {
  const r = await attach();
  if (on) {
    await r.disk.settle();
    await r.disk.flush();
    await r.volume.journal.enable();
  } else {
    await r.volume.journal.disable();
  }
  r.logOn = on;
  await refreshSnapshots();
  await refreshMarks();
  return on ? 'write log on: every write of the guest is kept; marks are points to rewind to' : 'write log off and deleted';
}

/**
 * Rewind the VM to mark `label` (the newest of that name): stop the machine, restore the disk
 * to the mark through the worker (logged, so undoable: the report names the undo mark), then
 * restore the mark's machine state, or reboot when it has none.
 */
async function rewind(label: string): Promise<string> {
  const r = await attach();
  if (!r.logOn) throw Object.assign(new Error('the disk keeps no write log'), { code: 'not-found' });
  const mark = (await r.volume.journal.marks()).filter((m) => m.label === label).at(-1);
  if (!mark) throw Object.assign(new Error(`no mark "${label}"`), { code: 'not-found' });
  // Decode the state first: a damaged one must not leave a stopped VM on a rewound disk.
  const bytes = await r.vm.states.get(markStateName(mark));
  const state = bytes ? await decodeState(bytes, `of mark "${label}"`) : undefined;
  const result = $('rewind-result');
  result.textContent = 'stopping the machine…';
  await stop();
  setProgress('rewind-progress', 0, 1);
  const report = await r.volume.journal.restore({ seq: mark.point }, {
    onProgress: (p) => {
      setProgress('rewind-progress', p.done, Math.max(1, p.total));
      result.textContent = `restoring the disk: ${p.done} of ${p.total} changed blocks`;
    },
  });
  setProgress('rewind-progress', 1, 1);
  r.disk.invalidate();
  await r.disk.prime();
  $('console').textContent = '';
  let how: string;
  if (state) {
    await startMachine(r, 'restore');
    await r.emulator!.restore_state(state);
    await r.emulator!.run();
    r.console?.send('\n');
    how = 'machine state restored: the guest continues from the mark';
    $('vm-state').textContent = `running · rewound to mark ${label}`;
  } else {
    $('vm-state').textContent = `rebooting on the disk of mark ${label}`;
    result.textContent = `disk rewound to mark ${label} (${report.blocks} blocks); the mark has no machine state: rebooting…`;
    await startMachine(r, 'boot');
    await r.console!.waitFor(GUEST_READY, 900_000);
    await r.console!.waitFor('# ', 60_000);
    how = 'the mark has no machine state: the machine rebooted on the rewound disk';
    $('vm-state').textContent = `running · rebooted on the disk of mark ${label}`;
  }
  await refreshMarks();
  result.innerHTML =
    `Rewound to mark <b>${escapeHtml(label)}</b> (record ${report.to}): ${report.blocks} disk block${report.blocks === 1 ? '' : 's'} restored; ${escapeHtml(how)}. ` +
    `To undo, rewind to <b class="undo-mark">${escapeHtml(report.undo)}</b>.`;
  return `rewound to mark ${label}: disk (${report.blocks} block${report.blocks === 1 ? '' : 's'}) and ${state ? 'machine state' : 'a reboot'}`;
}

async function refreshMarks(): Promise<Mark[]> {
  const select = $<HTMLSelectElement>('vm-marks');
  const keep = select.value;
  const r = current;
  const marks = r?.logOn ? await r.volume.journal.marks() : [];
  const withState = new Set(r ? (await r.vm.states.list()).map((s) => s.name) : []);
  // Newest first; a label that repeats names its newest mark.
  const seen = new Set<string>();
  const rows = [...marks].reverse().filter((m) => !seen.has(m.label) && seen.add(m.label));
  select.innerHTML = rows
    .map((m) => `<option value="${escapeHtml(m.label)}">${escapeHtml(m.label)} · ${escapeHtml(formatTime(new Date(m.time).toISOString()))}${withState.has(markStateName(m)) ? ' · disk + machine' : ' · disk'}</option>`)
    .join('');
  if (rows.some((m) => m.label === keep)) select.value = keep;
  $('log-state').textContent = !r ? 'no disk attached' : r.logOn ? `write log on · ${marks.length} mark${marks.length === 1 ? '' : 's'}` : 'write log off';
  setBusy(0);
  return marks;
}

async function revert(name: string): Promise<string> {
  const r = await attach();
  const snaps = await r.vm.list();
  const snap = snaps.find((s) => s.name === name);
  if (!snap) throw new Error(`no snapshot ${name}`);
  if (snap.machine && !r.emulator) {
    // A stopped VM and a machine snapshot: create the machine without booting, then restore.
    $('console').textContent = '';
    await startMachine(r, 'restore');
  }
  const res = await r.vm.revert(name);
  await refreshSnapshots();
  if (res.resumed === 'state') {
    $('vm-state').textContent = `running · restored ${name}`;
    r.console?.send('\n');
  } else if (res.resumed === 'reboot') $('vm-state').textContent = `rebooting on ${name}'s disk`;
  else $('vm-state').textContent = `stopped · disk at ${name}`;
  return `reverted to ${name} (${res.resumed === 'state' ? 'disk and machine' : res.resumed === 'reboot' ? 'disk; machine rebooted' : 'disk'})`;
}

async function discard(): Promise<string> {
  if (current) await stop();
  const spec = specOf();
  if (current) {
    await current.volume.close();
    current = undefined;
  }
  for (const s of (await statesFor(spec).list())) await statesFor(spec).delete(s.name);
  await client.deleteVolume(spec).catch((e) => {
    if (errorCode(e) !== 'not-found') throw e;
  });
  await refreshSnapshots();
  await refreshMarks();
  $('vm-state').textContent = 'disk deleted';
  return 'disk and machine states deleted';
}

async function refreshSnapshots(): Promise<VmSnapshotInfo[]> {
  const body = $('vm-snaps').querySelector('tbody')!;
  if (!current) {
    body.innerHTML = '';
    return [];
  }
  const list = await current.vm.list();
  // With the write log on the volume refuses revert (it would cut the log): rewind to a mark.
  const revertOff = current.logOn ? ' disabled title="the write log is on: rewind to the snapshot\'s mark instead"' : '';
  // (data-needs="nolog": setBusy keeps them disabled while the log is on)
  body.innerHTML = list
    .map((s) => `<tr><td>${escapeHtml(s.name)}</td><td>${s.machine ? `disk + machine (${formatBytes(s.stateBytes)})` : 'disk'}</td><td>${escapeHtml(formatTime(s.created))}</td>` +
      `<td><button data-revert="${escapeHtml(s.name)}" data-needs="nolog"${revertOff}>Revert</button></td></tr>`)
    .join('');
  for (const b of body.querySelectorAll<HTMLButtonElement>('button[data-revert]')) {
    b.addEventListener('click', () => void action(`revert ${b.dataset.revert}`, () => revert(b.dataset.revert!)));
  }
  return list;
}

/** Reset a disk on an image: stop the machine (flushing the adapter), drop the changes, forget the adapter's cache. */
async function resetToImage(): Promise<void> {
  const r = current;
  if (!r) throw new Error('no disk is attached');
  if (r.emulator) await stop();
  await r.volume.reset();
  r.disk.invalidate();
  await r.disk.prime();
  $('vm-state').textContent = 'stopped · disk reset to the image';
}

const provision = new ProvisionPanel($('provision'), {
  volume: () => current?.volume ?? null,
  reset: resetToImage,
  changed: () => void refreshMap(),
});

let mapBusy = false;
async function refreshMap(): Promise<void> {
  if (!current || mapBusy) return;
  mapBusy = true;
  try {
    const [info, extents] = await Promise.all([current.volume.info(), current.volume.map()]);
    const drawn = drawBlockMap($<HTMLCanvasElement>('blockmap'), info, extents);
    provision.show(info);
    renderLegend($('legend'), drawn, info.blockSize);
    $('map-scale').textContent = `${drawn.cells} cells`;
    const s = current.disk.stats;
    $('disk-stats').textContent = `guest: ${s.guestReads} reads, ${s.guestWrites} writes, ${s.guestFlushes} flushes · volume: ${s.volumeReads} reads, ${s.volumeWrites} writes, ${s.volumeFlushes} flushes · ` +
      `${formatBytes(s.dirtyBytes)} unwritten · ${formatBytes(s.cachedBytes)} cached`;
  } catch {
    // The volume may be closing; the next tick redraws.
  } finally {
    mapBusy = false;
  }
}
setInterval(() => void refreshMap(), 1000);

$('btn-boot').addEventListener('click', () => void action('boot', boot));
$('btn-stop').addEventListener('click', () => void action('stop', stop));
$('btn-snapshot').addEventListener('click', () => void action('snapshot', snapshot));
$('btn-list').addEventListener('click', () => void action('list', async () => `${(await refreshSnapshots()).length} snapshot(s)`));
$('btn-discard').addEventListener('click', () => void action('delete disk', discard));
$('btn-log-on').addEventListener('click', () => void action('write log on', () => setLog(true)));
$('btn-log-off').addEventListener('click', () => {
  if (confirm('Stop the write log and delete it? Its marks are gone; the disk keeps its data.')) void action('write log off', () => setLog(false));
});
$('btn-mark').addEventListener('click', () =>
  void action('mark', async () => {
    const label = inputValue('mark-label').trim();
    const m = await markVm(label, $<HTMLInputElement>('mark-machine').checked);
    const next = /^(.*?)(\d+)$/.exec(label);
    if (next) $<HTMLInputElement>('mark-label').value = `${next[1]}${Number(next[2]) + 1}`;
    return `mark "${m.label}" at record ${m.point}`;
  }),
);
$('vm-marks').addEventListener('change', () => setBusy(0));
$('btn-rewind').addEventListener('click', () => void action('rewind', () => rewind(inputValue('vm-marks'))));
$<HTMLInputElement>('console-input').addEventListener('keydown', (e) => {
  if (e.key !== 'Enter' || !current?.console) return;
  current.console.send(`${(e.target as HTMLInputElement).value}\n`);
  (e.target as HTMLInputElement).value = '';
});

/** How the demo's disk behaves: the defaults are what a page should use. */
export interface DiskConfig {
  /** false: a guest's flush completes at once, as in plain v86 (tests show what the barrier adds) */
  barrier: boolean;
  /** V86Disk's timer (default 1000 ms; Infinity: data becomes durable only at a flush) */
  flushIntervalMs?: number;
}

/** A hook for tests: the same operations as the buttons, plus running a command in the guest. */
export interface VmHook {
  ready: Promise<void>;
  boot(): Promise<string>;
  stop(): Promise<string>;
  attach(): Promise<void>;
  snapshot(name: string, machine: boolean): Promise<VmSnapshotInfo>;
  revert(name: string): Promise<string>;
  list(): Promise<VmSnapshotInfo[]>;
  run(command: string): Promise<string>;
  stats(): unknown;
  /** the volume's info (with `remote` for a disk on an image) */
  info(): Promise<unknown>;
  /** Set how the next attached disk behaves (before `attach`/`boot`). */
  configure(config: DiskConfig): void;
  /** Make everything the guest wrote durable (what stop and snapshots do first). */
  flush(): Promise<void>;
  /** Turn the disk's write log on or off. */
  log(on: boolean): Promise<string>;
  /** A mark in the write log, with the machine state when `machine` and the guest runs. */
  mark(label: string, machine: boolean): Promise<Mark>;
  marks(): Promise<Mark[]>;
  /** Rewind the VM to mark `label`: disk restored, then machine state or reboot. */
  rewind(label: string): Promise<string>;
}
declare global {
  interface Window {
    __vm?: VmHook;
  }
}

const ready = client.storage().then(() => {
  $('badge-worker').textContent = 'worker ready';
  setBusy(0);
});
window.__vm = {
  ready,
  boot,
  stop,
  attach: async () => void (await attach()),
  snapshot: async (name, machine) => {
    const r = await attach();
    return (await snapshotAndMark(r, name, machine)).info;
  },
  revert,
  list: async () => (current ? current.vm.list() : []),
  run: async (command) => {
    if (!current?.console) throw new Error('the machine is not running');
    return current.console.run(command);
  },
  stats: () => current?.disk.stats,
  info: async () => current?.volume.info(),
  configure: (config) => {
    if (current) throw new Error('configure before the disk is attached');
    diskConfig = { ...config };
  },
  flush: async () => {
    if (!current) throw new Error('no disk is attached');
    await current.disk.flush();
  },
  log: setLog,
  mark: markVm,
  marks: async () => (current?.logOn ? current.volume.journal.marks() : []),
  rewind,
};
