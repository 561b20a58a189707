/**
 * A run as one self-contained HTML page: every heatmap as inline SVG (labelled axes, a colour
 * bar, each cell's value in its <title> so it shows on hover), colored-token views, tables and
 * expectation checks. No scripts, styles from the page itself, no remote content: the file can
 * be mailed or archived and opens anywhere.
 *
 * Colours: the panels' diverging scale centred at 0 (ColorBrewer RdBu reversed: negative blue,
 * positive red; the stops of LIGHT_PALETTE in src/webview/colors.ts), over ±max|value|.
 */
import type { ExperimentBlock, ExperimentSection, HeatmapData } from '../../protocol/webview.js';
import type { RunRecord } from '../../protocol/runs.js';

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

/**
 * Colour of `value` over [-zmax, zmax] (diverging), or over [0, zmax] on the red half
 * (sequential: attention probabilities, scores), as the panels' heatmaps draw them.
 */
export function divergingColor(value: number | null, zmax: number, scale: 'diverging' | 'sequential' = 'diverging', zmin = 0): string {
  if (value === null || !Number.isFinite(value)) return rgb(MISSING);
  const lo = scale === 'sequential' ? 0 : -1;
  // A sequential scale with a floor (causal tracing's noised baseline) maps [zmin, zmax] to [0, 1].
  const floor = scale === 'sequential' && Number.isFinite(zmin) && zmin < zmax ? zmin : 0;
  const t = zmax - floor > 0 && Number.isFinite(zmax) ? Math.max(lo, Math.min(1, (value - floor) / (zmax - floor))) : 0;
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
export function heatmapSvg(h: HeatmapData, scale: 'diverging' | 'sequential' = 'diverging', zmaxOverride?: number): string {
  const nR = h.values.length;
  const nC = nR > 0 ? h.values[0]!.length : 0;
  let zmax = zmaxOverride ?? h.zmax ?? 0;
  if (!(zmax > 0)) zmax = maxAbs(h.values.flat());
  const zmin = scale === 'sequential' && h.zmin !== undefined && Number.isFinite(h.zmin) && h.zmin < zmax ? h.zmin : 0;
  const maxRowLabel = Math.min(28, Math.max(1, ...h.rowLabels.map((l) => l.length)));
  const maxColLabel = Math.min(24, Math.max(1, ...h.colLabels.map((l) => l.length)));
  const cellW = Math.max(0.25, Math.min(36, 860 / Math.max(1, nC)));
  // Tall enough for the rotated row-axis title ("sender layer" on a two-row strip was clipped).
  const cellH = Math.max(nR === 1 ? 26 : Math.max(2, Math.min(28, cellW, 600 / Math.max(1, nR))), (h.rowAxis.length * CHAR_W + 8) / Math.max(1, nR));
  const left = 24 + maxRowLabel * CHAR_W + 8;
  const top = 8;
  const plotW = cellW * nC;
  const plotH = cellH * nR;
  const rotate = maxColLabel * CHAR_W > cellW * Math.max(1, Math.ceil(nC / 60));
  const bottom = 22 + (rotate ? maxColLabel * CHAR_W * 0.75 : FONT + 4);
  const barX = left + plotW + 16;
  const width = barX + 96;
  const height = top + plotH + bottom;
  const parts: string[] = [];
  parts.push(`<svg width="${Math.ceil(width)}" height="${Math.ceil(Math.max(height, 120))}" font-family="system-ui, sans-serif" font-size="${FONT}" role="img" aria-label="${escapeHtml(h.title)}">`);
  // Cells, each with its value on hover.
  for (let r = 0; r < nR; r++) {
    for (let c = 0; c < nC; c++) {
      const v = h.values[r]![c] ?? null;
      const tip = `${h.rowAxis} ${h.rowLabels[r] ?? r}, ${h.colAxis} ${h.colLabels[c] ?? c}: ${h.valueLabel} = ${fmt(v, 5)}`;
      parts.push(`<rect x="${(left + c * cellW).toFixed(2)}" y="${(top + r * cellH).toFixed(2)}" width="${(cellW + 0.02).toFixed(2)}" height="${(cellH + 0.02).toFixed(2)}" fill="${divergingColor(v, zmax, scale, zmin)}"><title>${escapeHtml(tip)}</title></rect>`);
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
  // Colour bar: zmax at the top, -zmax (0 for sequential) at the bottom.
  const barH = Math.max(60, Math.min(plotH, 200));
  const lo = scale === 'sequential' ? zmin : -zmax;
  for (let i = 0; i < 40; i++) {
    const v = zmax - ((zmax - lo) * (i + 0.5)) / 40;
    parts.push(`<rect x="${barX}" y="${(top + (i * barH) / 40).toFixed(2)}" width="12" height="${(barH / 40 + 0.05).toFixed(2)}" fill="${divergingColor(v, zmax, scale, zmin)}"/>`);
  }
  const ticks: [number, number][] = scale === 'sequential' ? [[zmax, top], [zmin, top + barH]] : [[zmax, top], [0, top + barH / 2], [-zmax, top + barH]];
  for (const [v, y] of ticks) {
    parts.push(`<text x="${barX + 16}" y="${(y + FONT * 0.35).toFixed(1)}">${escapeHtml(fmt(v, 3))}</text>`);
  }
  parts.push(`<text transform="translate(${barX + 86},${(top + barH / 2).toFixed(1)}) rotate(90)" text-anchor="middle" fill="#555">${escapeHtml(truncate(h.valueLabel, 30))}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/** Largest finite |value| (0 when none). */
function maxAbs(values: readonly (number | null)[]): number {
  let m = 0;
  for (const v of values) if (v !== null && Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m;
}

/** A simple SVG chart: bars (signed, around a zero line) or a line over categorical x labels. */
function chartSvg(kind: 'bars' | 'line', labels: readonly string[], values: readonly (number | null)[], xAxis: string, yAxis: string, reference?: { value: number; label: string }): string {
  const n = values.length;
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  let lo = Math.min(0, ...finite);
  let hi = Math.max(0, ...finite);
  if (hi === lo) hi = lo + 1;
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const maxLabel = Math.min(28, Math.max(1, ...labels.map((l) => l.length)));
  const left = 84, top = 10, plotH = 220;
  const plotW = Math.max(240, Math.min(900, n * 14));
  const step = plotW / Math.max(1, n);
  const rotate = maxLabel * CHAR_W > step;
  const bottom = 26 + (rotate ? maxLabel * CHAR_W * 0.72 : FONT + 4);
  const y = (v: number) => top + ((hi - v) / (hi - lo)) * plotH;
  const parts: string[] = [`<svg width="${Math.ceil(left + plotW + 24 + (rotate ? maxLabel * CHAR_W * 0.72 : 0))}" height="${Math.ceil(top + plotH + bottom)}" font-family="system-ui, sans-serif" font-size="${FONT}" role="img" aria-label="${escapeHtml(yAxis)}">`];
  for (const t of [lo + pad, (lo + hi) / 2, hi - pad]) {
    parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/><text x="${left - 4}" y="${(y(t) + FONT * 0.35).toFixed(1)}" text-anchor="end">${escapeHtml(fmt(t, 3))}</text>`);
  }
  parts.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(0).toFixed(1)}" y2="${y(0).toFixed(1)}" stroke="#888"/>`);
  const zmax = maxAbs(values);
  if (kind === 'bars') {
    values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      const y0 = y(Math.max(0, v)), y1 = y(Math.min(0, v));
      parts.push(`<rect x="${(left + i * step + step * 0.1).toFixed(2)}" y="${y0.toFixed(2)}" width="${Math.max(0.3, step * 0.8).toFixed(2)}" height="${Math.max(0.5, y1 - y0).toFixed(2)}" fill="${divergingColor(v, zmax)}" stroke="#999" stroke-width="0.3"><title>${escapeHtml(`${labels[i] ?? i}: ${fmt(v, 5)}`)}</title></rect>`);
    });
  } else {
    const pts = values.map((v, i) => (v === null || !Number.isFinite(v) ? null : `${(left + (i + 0.5) * step).toFixed(2)},${y(v).toFixed(2)}`));
    let run: string[] = [];
    const flush = () => {
      if (run.length) parts.push(`<polyline points="${run.join(' ')}" fill="none" stroke="#2166ac" stroke-width="1.5"/>`);
      run = [];
    };
    pts.forEach((p) => (p === null ? flush() : run.push(p)));
    flush();
    if (n <= 200) values.forEach((v, i) => v !== null && Number.isFinite(v) && parts.push(`<circle cx="${(left + (i + 0.5) * step).toFixed(2)}" cy="${y(v).toFixed(2)}" r="2.5" fill="#2166ac"><title>${escapeHtml(`${labels[i] ?? i}: ${fmt(v, 5)}`)}</title></circle>`));
    else values.forEach((v, i) => v !== null && Number.isFinite(v) && parts.push(`<rect x="${(left + i * step).toFixed(2)}" y="${top}" width="${step.toFixed(3)}" height="${plotH}" fill="transparent"><title>${escapeHtml(`${labels[i] ?? i}: ${fmt(v, 5)}`)}</title></rect>`));
  }
  if (reference) {
    const rx = left + (reference.value + 0.5) * step;
    parts.push(`<line x1="${rx.toFixed(1)}" x2="${rx.toFixed(1)}" y1="${top}" y2="${top + plotH}" stroke="#c62828" stroke-dasharray="4 3"/><text x="${(rx + 4).toFixed(1)}" y="${top + FONT}" fill="#c62828">${escapeHtml(reference.label)}</text>`);
  }
  const labelStep = Math.max(1, Math.ceil((rotate ? FONT + 1 : maxLabel * CHAR_W + 6) / step));
  for (let i = 0; i < n; i += labelStep) {
    const x = left + (i + 0.5) * step;
    const lab = escapeHtml(truncate(labels[i] ?? String(i), 28));
    parts.push(rotate ? `<text transform="translate(${x.toFixed(1)},${top + plotH + 6}) rotate(45)">${lab}</text>` : `<text x="${x.toFixed(1)}" y="${top + plotH + 4 + FONT}" text-anchor="middle">${lab}</text>`);
  }
  parts.push(`<text x="${(left + plotW / 2).toFixed(1)}" y="${Math.ceil(top + plotH + bottom - 4)}" text-anchor="middle" font-weight="600">${escapeHtml(xAxis)}</text>`);
  parts.push(`<text transform="translate(14,${(top + plotH / 2).toFixed(1)}) rotate(-90)" text-anchor="middle" font-weight="600">${escapeHtml(yAxis)}</text>`);
  parts.push('</svg>');
  return parts.join('');
}

function tableHtml(title: string, columns: readonly string[], rows: readonly (readonly (string | number | null)[])[]): string {
  const cell = (c: string | number | null) => `<td>${escapeHtml(typeof c === 'number' || c === null ? fmt(c, 6) : c)}</td>`;
  return `<table><caption>${escapeHtml(title)}</caption><tr>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr>${rows.map((r) => `<tr>${r.map(cell).join('')}</tr>`).join('')}</table>`;
}

function figure(title: string, svg: string): string {
  return `<figure><figcaption>${escapeHtml(title)}</figcaption>${svg}</figure>`;
}

/** One block of a section, as HTML. */
export function blockHtml(b: ExperimentBlock): string {
  switch (b.type) {
    case 'heatmap': return figure(b.data.title, heatmapSvg(b.data, b.scale ?? 'diverging'));
    case 'compare': {
      // Each map over its own range (the colour bars print them), as the panel shows by default.
      return `<div class="compare"><p class="muted">correlation ${fmt(b.correlation, 4)}, largest difference ${fmt(b.maxAbsDiff, 4)} (each map over its own colour range)</p>${figure(b.exact.title, heatmapSvg(b.exact, 'diverging'))}${figure(b.estimate.title, heatmapSvg(b.estimate, 'diverging'))}</div>`;
    }
    case 'bars': return figure(b.title, chartSvg('bars', b.labels, b.values, '', b.valueLabel));
    case 'line': return figure(b.title, chartSvg('line', b.labels, b.values, b.xAxis, b.yAxis, b.reference));
    case 'topk': {
      const head = `${b.title}${b.answer ? ` — answer ${JSON.stringify(b.answer.str)}: rank ${b.answer.rank}, logit ${fmt(b.answer.logit, 4)}, probability ${fmt(100 * b.answer.prob, 4)}%` : ''}`;
      return `<p class="mono">${b.strTokens.map((t) => `<span class="tok">${escapeHtml(t)}</span>`).join('')}</p>${tableHtml(head, ['rank', 'token', 'logit', 'probability'], b.entries.map((e, k) => [k, JSON.stringify(e.str), e.logit, `${fmt(100 * e.prob, 4)}%`]))}`;
    }
    case 'table': return tableHtml(b.title, b.columns, b.rows);
    case 'tokens': {
      const zmax = maxAbs(b.values);
      const spans = b.tokens.map((t, i) => `<span class="tok" style="background:${divergingColor(b.values[i] ?? null, zmax)}" title="${escapeHtml(`${JSON.stringify(t)}: ${fmt(b.values[i], 5)}`)}">${escapeHtml(t.replace(/\n/g, '↵'))}</span>`);
      return `<div class="tokens"><div class="caption">${escapeHtml(b.title)} <span class="muted">(${escapeHtml(b.valueLabel)}, max |value| ${fmt(zmax)})</span></div>${spans.join('')}</div>`;
    }
    case 'stats': return `<dl class="stats">${b.items.map((it) => `<dt${it.title ? ` title="${escapeHtml(it.title)}"` : ''}>${escapeHtml(it.label)}</dt><dd>${escapeHtml(typeof it.value === 'number' || it.value === null ? fmt(it.value, 6) : it.value)}</dd>`).join('')}</dl>`;
    case 'ref': return tableHtml(`${b.title} (${b.rows} x ${b.cols} ${b.valueLabel}, in ${b.file} ${b.path}); largest cells`, [b.rowAxis, b.colAxis, b.valueLabel], b.summary.top.map((t) => [t.row, t.col, t.value]));
  }
}

function sectionHtml(r: ExperimentSection): string {
  const parts: string[] = [`<section><h2>${escapeHtml(r.title)}${r.partial ? ' <span class="bad">(cancelled: partial)</span>' : ''}</h2>`];
  parts.push(`<p class="muted">${escapeHtml(r.kind)} · ${(r.elapsedMs / 1000).toFixed(2)} s</p>`);
  for (const n of r.notes ?? []) parts.push(`<p class="muted">${escapeHtml(n)}</p>`);
  if (r.checks?.length) {
    parts.push('<table class="checks"><tr><th></th><th>check</th><th>expected</th><th>actual</th><th>tolerance</th></tr>');
    for (const c of r.checks) parts.push(`<tr><td class="${c.ok ? 'ok' : 'bad'}">${c.ok ? '✓' : '✗'}</td><td>${escapeHtml(c.what)}</td><td>${fmt(c.expected, 6)}</td><td>${fmt(c.actual, 6)}</td><td>${fmt(c.tolerance, 2)}</td></tr>`);
    parts.push('</table>');
  }
  for (const b of r.blocks) parts.push(blockHtml(b));
  parts.push('</section>');
  return parts.join('\n');
}

/** The report page of a run (its run.json): every section of an experiment, or a heatmap panel's maps. */
export function renderReport(record: RunRecord): string {
  const st = record.state;
  const sections = st.kind === 'experiment' ? st.sections : [];
  const checks = sections.flatMap((r) => r.checks ?? []);
  const failed = checks.filter((c) => !c.ok).length;
  const inputs = record.inputs;
  type PromptRow = { prompt: string; corrupted?: string; answer?: string; wrong?: string };
  const groups: { name: string | null; prompts: PromptRow[] }[] = Array.isArray(inputs['groups'])
    ? (inputs['groups'] as { name: string | null; prompts: PromptRow[] }[])
    : [{ name: null, prompts: inputs.prompts.map((p, i): PromptRow => ({ prompt: p, ...(inputs.corrupted?.[i] !== undefined ? { corrupted: inputs.corrupted[i] } : {}) })) }];
  const promptRows = groups.flatMap((g) => g.prompts.map((p) => `<tr><td>${escapeHtml(g.name ?? '')}</td><td>${escapeHtml(p.prompt)}</td><td>${escapeHtml(p.corrupted ?? '')}</td><td>${escapeHtml(p.answer !== undefined ? JSON.stringify(p.answer) : '')}</td><td>${escapeHtml(p.wrong !== undefined ? JSON.stringify(p.wrong) : '')}</td></tr>`));
  const body = st.kind === 'experiment'
    ? sections.map(sectionHtml).join('\n')
    : st.kind === 'heatmap'
      ? st.heatmaps.map((h) => `<section>${figure(h.title, heatmapSvg(h))}</section>`).join('\n')
      : '<p>This run has no figures to report.</p>';
  const description = st.kind === 'experiment' ? `${st.description}\nMetric: ${st.metric}.` : st.kind === 'heatmap' ? st.description : '';
  const run = st.kind === 'experiment' ? st.run : undefined;
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${escapeHtml(record.title)} — MechLens report</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Ubuntu, sans-serif; color: #1f1f1f; background: #fff; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin: 28px 0 2px; border-top: 1px solid #ddd; padding-top: 14px; }
.muted { color: #666; } .ok { color: #1a7f37; font-weight: 600; } .bad { color: #c62828; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; } caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; } th { background: #f5f5f5; }
figure { margin: 10px 0 18px; overflow-x: auto; } figcaption { font-weight: 600; margin-bottom: 4px; }
.tokens, .mono { margin: 8px 0; font-family: Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 13px; line-height: 1.9; }
.tokens .caption { font-family: system-ui, sans-serif; font-weight: 600; }
.tok { border: 1px solid #bbb; padding: 1px 2px; margin-right: 1px; white-space: pre; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; } dt { color: #666; }
</style></head><body>
<h1>${escapeHtml(record.title)}</h1>
<dl>
<dt>model</dt><dd>${escapeHtml(record.model.name)} (${escapeHtml(record.model.spec)}, processing ${escapeHtml(record.model.processing)})</dd>
<dt>created</dt><dd>${escapeHtml(record.createdAt)}</dd>
<dt>engine</dt><dd>MechLens ${escapeHtml(record.engineVersion)}</dd>
<dt>run</dt><dd>${escapeHtml(record.id)}${run ? ` · ${(run.elapsedMs / 1000).toFixed(1)} s${run.cancelled ? ' · <span class="bad">cancelled</span>' : ''}` : ''}</dd>
${checks.length ? `<dt>checks</dt><dd><span class="${failed ? 'bad' : 'ok'}">${checks.length - failed} of ${checks.length} expectations met</span></dd>` : ''}
</dl>
<p>${escapeHtml(description).replace(/\n/g, '<br>')}</p>
<details><summary>Prompts (${promptRows.length})</summary><table><tr><th>group</th><th>prompt</th><th>corrupted</th><th>answer</th><th>wrong</th></tr>${promptRows.join('')}</table></details>
${body}
</body></html>
`;
}
