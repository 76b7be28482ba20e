import type { SalvageRange, SalvageSurvey, SalvageView, SalvageViewResult } from '../volume/salvage.js';
import { formatBytes } from './size.js';

/** One image salvage wrote. */
export interface ExportedImage extends SalvageViewResult {
  kind: SalvageView['kind'];
  name: string;
  file: string;
  size: number;
  note?: string;
}

/** What `stratadisk salvage` did: written as OUT/salvage-report.json and printed by `--json`. */
export interface SalvageReport extends SalvageSurvey {
  source: string;
  out: string;
  /** false when interrupted or failed before every image was written */
  complete: boolean;
  /** caveats about how salvage ran (not damage) */
  notes: string[];
  exported: ExportedImage[];
  notExported: { kind: SalvageView['kind']; name: string; file: string; reason: string }[];
  /** bytes written as zeros (unreadable) over all images */
  zeroedBytes: number;
  /** bytes whose content is uncertain over all images */
  uncertainBytes: number;
}

const sum = (ranges: SalvageRange[]) => ranges.reduce((n, r) => n + r.length, 0);

export function totals(exported: ExportedImage[]): { zeroedBytes: number; uncertainBytes: number } {
  return { zeroedBytes: exported.reduce((n, e) => n + sum(e.zeroed), 0), uncertainBytes: exported.reduce((n, e) => n + sum(e.uncertain), 0) };
}

/** Does the report show anything lost, unreadable or uncertain? */
export function damaged(r: SalvageReport): boolean {
  return r.zeroedBytes > 0 || r.uncertainBytes > 0 || r.newerState.length > 0 || r.problems.length > 0 || r.layers.some((l) => l.problems.length > 0);
}

function label(e: { kind: SalvageView['kind']; name: string }): string {
  switch (e.kind) {
    case 'snapshot':
      return `snapshot ${e.name}`;
    case 'live':
      return 'the live view';
    case 'newer':
      return `layer ${e.name} on the live view`;
    default:
      return `layer ${e.name} alone`;
  }
}

function rangeLine(r: SalvageRange): string {
  return `      bytes ${r.offset}-${r.offset + r.length - 1} (${formatBytes(r.length)}) from ${r.layer}: ${r.reason}`;
}

/** Most ranges listed per image in the text report (the JSON report lists all). */
const TEXT_RANGES = 20;

/** The report as text, for people (also OUT/salvage-report.txt). */
export function formatSalvageReport(r: SalvageReport): string {
  const out: string[] = [];
  out.push(`Salvage of ${r.source} into ${r.out}${r.complete ? '' : ' (INCOMPLETE: see "Not exported")'}`);
  const slots = r.slots.map((s) => `${s.name}: ${s.state}${s.generation !== undefined ? ` (generation ${s.generation})` : ''}`).join(', ');
  out.push(r.manifest ? `Manifest: generation ${r.manifest.generation} from ${r.manifest.slot} (${slots})` : `Manifest: none readable (${slots})`);
  for (const p of r.problems) out.push(`  ! ${p}`);
  for (const n of r.notes) out.push(`  note: ${n}`);
  if (r.newerState.length > 0) {
    out.push('', 'Newer state that the surviving manifest does not know (it was lost from the manifest; its layers are exported below):');
    for (const e of r.newerState) out.push(`  - ${e.message}`);
  }
  out.push('', 'Layers:');
  for (const l of r.layers) {
    out.push(`  ${l.id}: ${l.dataBlocks} data block(s), ${l.zeroBlocks} zero block(s)${l.problems.length === 0 ? ', readable' : ''}`);
    for (const p of l.problems) out.push(`      ${p}`);
  }
  out.push('', 'Exported (sparse raw images):');
  if (r.exported.length === 0) out.push('  nothing');
  for (const e of r.exported) {
    const bad = sum(e.zeroed);
    const unsure = sum(e.uncertain);
    const state = bad === 0 && unsure === 0 ? 'all readable' : [bad > 0 ? `${formatBytes(bad)} unreadable, written as zeros` : '', unsure > 0 ? `${formatBytes(unsure)} uncertain` : ''].filter(Boolean).join('; ');
    out.push(`  ${e.file}: ${label(e)}, ${formatBytes(e.size)}, ${formatBytes(e.dataBytes)} of data; ${state}`);
    if (e.note) out.push(`      note: ${e.note}`);
    for (const z of e.zeroed.slice(0, TEXT_RANGES)) out.push(rangeLine(z));
    if (e.zeroed.length > TEXT_RANGES) out.push(`      ... and ${e.zeroed.length - TEXT_RANGES} more unreadable range(s) (see salvage-report.json)`);
    for (const u of e.uncertain.slice(0, TEXT_RANGES)) out.push(rangeLine(u).replace(': ', ': uncertain: '));
    if (e.uncertain.length > TEXT_RANGES) out.push(`      ... and ${e.uncertain.length - TEXT_RANGES} more uncertain range(s) (see salvage-report.json)`);
  }
  if (r.notExported.length > 0) {
    out.push('', 'Not exported:');
    for (const n of r.notExported) out.push(`  ${n.file}: ${label(n)}: ${n.reason}`);
  }
  out.push('');
  const written = r.complete ? `${r.exported.length} image(s) written` : `only ${r.exported.length} of ${r.exported.length + r.notExported.length} image(s) written`;
  out.push(
    damaged(r)
      ? `Summary: ${formatBytes(r.zeroedBytes)} unreadable (written as zeros), ${formatBytes(r.uncertainBytes)} uncertain; ${written}.`
      : `Summary: everything read was readable; ${written}.`,
  );
  return out.join('\n');
}
