/**
 * A run as one self-contained HTML page: every heatmap as inline SVG (labelled axes, a colour
 * bar, each cell's value in its <title> so it shows on hover), colored-token views, tables and
 * expectation checks. No scripts, styles from the page itself, no remote content: the file can
 * be mailed or archived and opens anywhere.
 *
 * Colours: the panels' diverging scale centred at 0 (ColorBrewer RdBu reversed: negative blue,
 * positive red; the stops of LIGHT_PALETTE in src/webview/colors.ts), over ±max|value|.
 */
import type { HeatmapData } from '../../protocol/webview.js';
import type { RunRecord } from '../../protocol/runs.js';
import type { AnalysisResult, ExperimentResults, TokenView } from './run.js';

type RGB = readonly [number, number, number];

/** The light palette of src/webview/colors.ts (kept equal by a test). */
export const DIVERGING_STOPS: ReadonlyArray<readonly [number, RGB]> = [
  [-1, [5, 48, 97]],
  [-0.8, [33, 102, 172]],
  [-0.6, [67, 147, 195]],
  [-0.4, [146, 197, 222]],
  [-0.2, [209, 229, 240]],
  [0, [247, 247, 247]],
  [0.2, [253, 219, 199]],
  [0.4, [244, 165, 130]],
  [0.6, [214, 96, 77]],
  [0.8, [178, 24, 43]],
  [1, [103, 0, 31]],
];
const MISSING: RGB = [200, 200, 200];

/** Colour of `value` on the diverging scale over [-zmax, zmax]. */
export function divergingColor(value: number, zmax: number): string {
  if (!Number.isFinite(value)) return rgb(MISSING);
  const t = zmax > 0 && Number.isFinite(zmax) ? Math.max(-1, Math.min(1, value / zmax)) : 0;
  for (let i = 1; i < DIVERGING_STOPS.length; i++) {
    const [t1, c1] = DIVERGING_STOPS[i]!;
    if (t > t1) continue;
    const [t0, c0] = DIVERGING_STOPS[i - 1]!;
    const f = (t - t0) / (t1 - t0);
    return rgb([0, 1, 2].map((k) => Math.round(c0[k]! + (c1[k]! - c0[k]!) * f)) as unknown as RGB);
  }
  return rgb(DIVERGING_STOPS[DIVERGING_STOPS.length - 1]![1]);
}

function rgb(c: RGB): string {
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Significant digits for labels and hovers. */
function fmt(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return 'n/a';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e-6 && a < 1e6) return String(Number(v.toPrecision(digits)));
  // 1.50e-7 -> 1.5e-7
  return v.toExponential(digits - 1).replace(/\.?0+e/, 'e');
}

const FONT = 11;
const CHAR_W = FONT * 0.6;

/** An SVG heatmap of `h`: rows top to bottom, columns left to right (like plotly imshow). */
export function heatmapSvg(h: HeatmapData): string {
  const nR = h.values.length;
  const nC = nR > 0 ? h.values[0]!.length : 0;
  let zmax = h.zmax ?? 0;
  if (!(zmax > 0)) for (const row of h.values) for (const v of row) if (v !== null && Number.isFinite(v)) zmax = Math.max(zmax, Math.abs(v));
  const maxRowLabel = Math.min(28, Math.max(1, ...h.rowLabels.map((l) => l.length)));
  const maxColLabel = Math.min(24, Math.max(1, ...h.colLabels.map((l) => l.length)));
  const cellW = Math.max(0.25, Math.min(36, 860 / Math.max(1, nC)));
  const cellH = nR === 1 ? 26 : Math.max(2, Math.min(28, cellW, 600 / Math.max(1, nR)));
  const left = 24 + maxRowLabel * CHAR_W + 8;
  const top = 8;
  const plotW = cellW * nC;
  const plotH = cellH * nR;
  const rotate = maxColLabel * CHAR_W > cellW * Math.max(1, Math.ceil(nC / 60));
  const bottom = 22 + (rotate ? maxColLabel * CHAR_W * 0.75 : FONT + 4);
  const barX = left + plotW + 16;
  const width = barX + 70;
  const height = top + plotH + bottom;
  const parts: string[] = [];
  parts.push(`<svg width="${Math.ceil(width)}" height="${Math.ceil(Math.max(height, 120))}" font-family="system-ui, sans-serif" font-size="${FONT}" role="img" aria-label="${escapeHtml(h.title)}">`);
  // Cells, each with its value on hover.
  for (let r = 0; r < nR; r++) {
    for (let c = 0; c < nC; c++) {
      const v = h.values[r]![c]!;
      const tip = `${h.rowAxis} ${h.rowLabels[r] ?? r}, ${h.colAxis} ${h.colLabels[c] ?? c}: ${h.valueLabel} = ${fmt(v, 5)}`;
      parts.push(`<rect x="${(left + c * cellW).toFixed(2)}" y="${(top + r * cellH).toFixed(2)}" width="${(cellW + 0.02).toFixed(2)}" height="${(cellH + 0.02).toFixed(2)}" fill="${divergingColor(v ?? NaN, zmax)}"><title>${escapeHtml(tip)}</title></rect>`);
    }
  }
  parts.push(`<rect x="${left}" y="${top}" width="${plotW.toFixed(2)}" height="${plotH.toFixed(2)}" fill="none" stroke="#999" stroke-width="0.5"/>`);
  // Row labels (thinned to fit).
  const rowStep = Math.max(1, Math.ceil((FONT + 1) / cellH));
  for (let r = 0; r < nR; r += rowStep) {
    parts.push(`<text x="${left - 4}" y="${(top + (r + 0.5) * cellH + FONT * 0.35).toFixed(1)}" text-anchor="end">${escapeHtml(truncate(h.rowLabels[r] ?? String(r), 28))}</text>`);
  }
  // Column labels.
  const colStep = Math.max(1, Math.ceil((rotate ? FONT + 1 : maxColLabel * CHAR_W + 6) / cellW));
  for (let c = 0; c < nC; c += colStep) {
    const x = left + (c + 0.5) * cellW;
    const y = top + plotH + 4;
    const label = escapeHtml(truncate(h.colLabels[c] ?? String(c), 24));
    parts.push(rotate
      ? `<text transform="translate(${x.toFixed(1)},${(y + 2).toFixed(1)}) rotate(45)" text-anchor="start">${label}</text>`
      : `<text x="${x.toFixed(1)}" y="${(y + FONT).toFixed(1)}" text-anchor="middle">${label}</text>`);
  }
  // Axis titles.
  parts.push(`<text x="${(left + plotW / 2).toFixed(1)}" y="${(height - 4).toFixed(1)}" text-anchor="middle" font-weight="600">${escapeHtml(h.colAxis)}</text>`);
  parts.push(`<text transform="translate(12,${(top + plotH / 2).toFixed(1)}) rotate(-90)" text-anchor="middle" font-weight="600">${escapeHtml(h.rowAxis)}</text>`);
  // Colour bar: -zmax .. 0 .. zmax.
  const barH = Math.max(60, Math.min(plotH, 200));
  for (let i = 0; i < 40; i++) {
    const v = zmax * (1 - (2 * (i + 0.5)) / 40);
    parts.push(`<rect x="${barX}" y="${(top + (i * barH) / 40).toFixed(2)}" width="12" height="${(barH / 40 + 0.05).toFixed(2)}" fill="${divergingColor(v, zmax)}"/>`);
  }
  for (const [v, y] of [[zmax, top], [0, top + barH / 2], [-zmax, top + barH]] as const) {
    parts.push(`<text x="${barX + 16}" y="${(y + FONT * 0.35).toFixed(1)}">${escapeHtml(fmt(v, 3))}</text>`);
  }
  parts.push(`<text transform="translate(${barX + 62},${(top + barH / 2).toFixed(1)}) rotate(90)" text-anchor="middle" fill="#555">${escapeHtml(truncate(h.valueLabel, 30))}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function tokenViewHtml(v: TokenView): string {
  let zmax = 0;
  for (const x of v.values) if (Number.isFinite(x)) zmax = Math.max(zmax, Math.abs(x));
  const spans = v.tokens.map((t, i) => `<span class="tok" style="background:${divergingColor(v.values[i] ?? NaN, zmax)}" title="${escapeHtml(`${JSON.stringify(t)}: ${fmt(v.values[i], 5)}`)}">${escapeHtml(t.replace(/\n/g, '↵'))}</span>`);
  return `<div class="tokens"><div class="caption">${escapeHtml(v.title)} <span class="muted">(max |activation| ${fmt(zmax)})</span></div>${spans.join('')}</div>`;
}

function analysisHtml(r: AnalysisResult): string {
  const parts: string[] = [`<section><h2>${escapeHtml(r.title)}${r.partial ? ' <span class="bad">(cancelled: partial)</span>' : ''}</h2>`];
  parts.push(`<p class="muted">${escapeHtml(r.kind)} · ${(r.elapsedMs / 1000).toFixed(2)} s</p>`);
  if (r.checks?.length) {
    parts.push('<table class="checks"><tr><th></th><th>check</th><th>expected</th><th>actual</th><th>tolerance</th></tr>');
    for (const c of r.checks) parts.push(`<tr><td class="${c.ok ? 'ok' : 'bad'}">${c.ok ? '✓' : '✗'}</td><td>${escapeHtml(c.what)}</td><td>${fmt(c.expected, 6)}</td><td>${fmt(c.actual, 6)}</td><td>${fmt(c.tolerance, 2)}</td></tr>`);
    parts.push('</table>');
  }
  for (const t of r.tables ?? []) {
    parts.push(`<table><caption>${escapeHtml(t.title)}</caption><tr>${t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>`);
    for (const row of t.rows) parts.push(`<tr>${row.map((c) => `<td>${escapeHtml(typeof c === 'number' ? fmt(c, 6) : c)}</td>`).join('')}</tr>`);
    parts.push('</table>');
  }
  for (const h of r.heatmaps) parts.push(`<figure><figcaption>${escapeHtml(h.title)}</figcaption>${heatmapSvg(h)}</figure>`);
  for (const v of r.tokenViews ?? []) parts.push(tokenViewHtml(v));
  parts.push('</section>');
  return parts.join('\n');
}

/** The report page of a run. */
export function renderReport(record: RunRecord, results: ExperimentResults | null): string {
  const rs = results?.results ?? [];
  const checks = rs.flatMap((r) => r.checks ?? []);
  const failed = checks.filter((c) => !c.ok).length;
  const inputs = record.inputs;
  const groups = Array.isArray(inputs['groups']) ? (inputs['groups'] as { name: string | null; prompts: { prompt: string; corrupted?: string; answer?: string; wrong?: string }[] }[]) : [];
  const promptRows = groups.flatMap((g) => g.prompts.map((p) => `<tr><td>${escapeHtml(g.name ?? '')}</td><td>${escapeHtml(p.prompt)}</td><td>${escapeHtml(p.corrupted ?? '')}</td><td>${escapeHtml(p.answer !== undefined ? JSON.stringify(p.answer) : '')}</td><td>${escapeHtml(p.wrong !== undefined ? JSON.stringify(p.wrong) : '')}</td></tr>`));
  const body = results
    ? rs.map(analysisHtml).join('\n')
    : record.state.kind === 'heatmap'
      ? record.state.heatmaps.map((h) => `<section><figure><figcaption>${escapeHtml(h.title)}</figcaption>${heatmapSvg(h)}</figure></section>`).join('\n')
      : '<p>This run has no heatmaps.</p>';
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(record.title)} — MechLens report</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Ubuntu, sans-serif; color: #1f1f1f; background: #fff; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 28px 0 2px; border-top: 1px solid #ddd; padding-top: 14px; }
.muted { color: #666; } .ok { color: #1a7f37; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; } caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; } th { background: #f5f5f5; }
figure { margin: 10px 0 18px; overflow-x: auto; } figcaption { font-weight: 600; margin-bottom: 4px; }
.tokens { margin: 8px 0; font-family: Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 13px; line-height: 1.9; }
.tokens .caption { font-family: system-ui, sans-serif; font-weight: 600; }
.tok { border: 1px solid #bbb; padding: 1px 2px; margin-right: 1px; white-space: pre; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; } dt { color: #666; }
</style></head><body>
<h1>${escapeHtml(record.title)}</h1>
<dl>
<dt>model</dt><dd>${escapeHtml(record.model.name)} (${escapeHtml(record.model.spec)}, processing ${escapeHtml(record.model.processing)})</dd>
<dt>created</dt><dd>${escapeHtml(record.createdAt)}</dd>
<dt>engine</dt><dd>MechLens ${escapeHtml(record.engineVersion)}</dd>
<dt>run</dt><dd>${escapeHtml(record.id)}${results ? ` · ${(results.elapsedMs / 1000).toFixed(1)} s${results.cancelled ? ' · <span class="bad">cancelled</span>' : ''}` : ''}</dd>
${checks.length ? `<dt>checks</dt><dd><span class="${failed ? 'bad' : 'ok'}">${checks.length - failed} of ${checks.length} expectations met</span></dd>` : ''}
</dl>
${record.state.kind === 'heatmap' ? `<p>${escapeHtml(record.state.description).replace(/\n/g, '<br>')}</p>` : ''}
<details><summary>Prompts (${promptRows.length})</summary><table><tr><th>group</th><th>prompt</th><th>corrupted</th><th>answer</th><th>wrong</th></tr>${promptRows.join('')}</table></details>
${body}
</body></html>
`;
}
