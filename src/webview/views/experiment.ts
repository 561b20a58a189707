/**
 * Experiment results: one section per analysis of a run (ExperimentState), each drawn with the
 * shared components: heatmaps (patching sweeps by layer × position with `tok_i` labels, layer ×
 * head maps, attention, head scores, circuits, causal tracing, path patching) with their PNG /
 * SVG / CSV / JSON exports, an exact sweep beside its attribution-patching estimate on one colour
 * range, bars (DLA per component, ablation), lines (logit lens, loss by position), top-k tables,
 * coloured tokens (neuron activations) and the `expect` checks as met / not met.
 *
 * States can come from run.json (the Runs view re-opens runs from it), where JSON turned NaN into
 * null: every number is read through `num`, so a missing value is drawn as missing, never as 0.
 */
import type { ExperimentBlock, ExperimentCheck, ExperimentSection, ExperimentState, HeatmapData } from '../../protocol/webview.js';
import { barChart } from '../components/barChart.js';
import { Heatmap, type HeatmapProps } from '../components/heatmap.js';
import { LineChart } from '../components/lineChart.js';
import { tokenChip, tokenStrip, quoteToken } from '../components/tokens.js';
import { topKTable } from '../components/topk.js';
import type { ViewContext } from '../context.js';
import { h } from '../dom.js';
import { checkbox } from '../ui/controls.js';
import { formatFixed, formatPercent, formatRank, formatSig, formatSigned } from '../format.js';
import { panelHeader, section, stat } from './common.js';

/** A number from the state: null (JSON's NaN) and non-numbers become NaN. */
export function num(v: unknown): number {
  return typeof v === 'number' ? v : NaN;
}

/** The heatmap with NaN for missing cells (after run.json, they are null). */
export function cleanHeatmap(d: HeatmapData): HeatmapData {
  const nCols = d.values[0]?.length ?? 0;
  if (d.values.some((r) => r.length !== nCols)) throw new Error(`heatmap '${d.title}': rows of values have different lengths`);
  if (d.rowLabels.length !== d.values.length || d.colLabels.length !== nCols) throw new Error(`heatmap '${d.title}': ${d.rowLabels.length}×${d.colLabels.length} labels for ${d.values.length}×${nCols} values`);
  return { ...d, values: d.values.map((r) => r.map(num)) };
}

/** Largest |value| of several heatmaps: the shared colour range of an exact/estimate pair. */
export function sharedZmax(...ds: HeatmapData[]): number | undefined {
  let m = 0;
  for (const d of ds) for (const r of d.values) for (const v of r) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m > 0 ? m : undefined;
}

function formatValue(v: number | string | null, format: 'sig' | 'signed' | 'percent' | 'text' = 'sig'): string {
  if (typeof v === 'string') return v;
  const x = num(v);
  if (format === 'percent') return formatPercent(x);
  if (format === 'signed') return formatSigned(x, 4);
  return formatSig(x, 4);
}

function heatmapBlock(ctx: ViewContext, data: HeatmapData, look: Partial<HeatmapProps> = {}): HTMLElement {
  const key = `experiment:${data.title}`;
  const hm = new Heatmap(
    { doc: ctx.doc, theme: ctx.theme, host: ctx.host, disposables: ctx.disposables },
    {
      data,
      ...look,
      annotate: ctx.ui.get('annotate')?.[key] ?? false,
      onAnnotateChange: (v) => ctx.ui.set('annotate', { ...(ctx.ui.get('annotate') ?? {}), [key]: v }),
    },
  );
  return h(ctx.doc, 'div', { class: 'ml-exp-block ml-exp-heatmap' }, hm.el);
}

function checksTable(doc: Document, checks: ExperimentCheck[]): HTMLElement {
  const met = checks.filter((c) => c.ok).length;
  const rows = checks.map((c) =>
    h(
      doc,
      'tr',
      { class: c.ok ? 'ml-check-met' : 'ml-check-missed' },
      h(doc, 'td', { class: c.ok ? 'ml-good' : 'ml-bad', title: c.ok ? 'within the tolerance' : 'outside the tolerance' }, c.ok ? '✓ met' : '✗ not met'),
      h(doc, 'td', undefined, c.what),
      h(doc, 'td', { class: 'ml-num', title: String(c.expected) }, formatSig(c.expected, 5)),
      h(doc, 'td', { class: 'ml-num', title: String(c.actual) }, formatSig(num(c.actual), 5)),
      h(doc, 'td', { class: 'ml-num ml-muted' }, `± ${formatSig(c.tolerance, 2)}`),
    ),
  );
  return h(
    doc,
    'div',
    { class: 'ml-exp-block ml-exp-checks' },
    h(doc, 'h3', undefined, `Expectations: ${met} of ${checks.length} met`),
    h(doc, 'table', { class: 'ml-table' }, h(doc, 'thead', undefined, h(doc, 'tr', undefined, h(doc, 'th'), h(doc, 'th', undefined, 'check'), h(doc, 'th', { class: 'ml-num' }, 'expected'), h(doc, 'th', { class: 'ml-num' }, 'actual'), h(doc, 'th', { class: 'ml-num' }, 'tolerance'))), h(doc, 'tbody', undefined, ...rows)),
  );
}

function renderBlock(b: ExperimentBlock, ctx: ViewContext, sectionTitle: string, context?: string): HTMLElement {
  const { doc } = ctx;
  const inContext = (look: Partial<HeatmapProps>): Partial<HeatmapProps> => (context ? { ...look, context } : look);
  // A block titled like its section (one chart per analysis) needs no second heading.
  const heading = (title: string) => (title === sectionTitle ? null : h(doc, 'h3', undefined, title));
  switch (b.type) {
    case 'heatmap':
      return heatmapBlock(ctx, cleanHeatmap(b.data), inContext({ ...(b.scale ? { scale: b.scale } : {}), ...(b.square ? { square: true } : {}), ...(b.valueFormat ? { valueFormat: b.valueFormat } : {}) }));
    case 'compare': {
      const exact = cleanHeatmap(b.exact);
      const est = cleanHeatmap(b.estimate);
      // Each map gets its own range by default (an exact maximum of 0.9 beside an estimate of 2
      // would look pale); "Same colour range" makes equal colours mean equal numbers.
      const key = exact.title;
      const box = h(doc, 'div', { class: 'ml-grow' });
      const pair = (shared: boolean): HTMLElement => {
        const z = shared ? sharedZmax(exact, est) : undefined;
        const withZ = (d: HeatmapData): HeatmapData => (z !== undefined ? { ...d, zmax: z } : d);
        return h(doc, 'div', { class: 'ml-row' }, h(doc, 'div', { class: 'ml-grow', 'data-role': 'exact' }, heatmapBlock(ctx, withZ(exact), inContext({}))), h(doc, 'div', { class: 'ml-grow', 'data-role': 'estimate' }, heatmapBlock(ctx, withZ(est), inContext({}))));
      };
      let shared = ctx.ui.get('sharedScale')?.[key] ?? false;
      box.append(pair(shared));
      const toggle = checkbox(doc, {
        label: 'Same colour range',
        checked: shared,
        title: 'Draw both maps over one colour range (equal colours mean equal numbers); off: each map over its own largest |value|',
        onChange: (v) => {
          shared = v;
          ctx.ui.set('sharedScale', { ...(ctx.ui.get('sharedScale') ?? {}), [key]: v });
          box.replaceChildren(pair(shared));
        },
      });
      return h(
        doc,
        'div',
        { class: 'ml-exp-block ml-exp-compare' },
        h(
          doc,
          'div',
          { class: 'ml-stats' },
          stat(doc, 'Pearson r (exact vs attribution)', formatFixed(num(b.correlation), 3), 'correlation over the cells of the two maps'),
          stat(doc, 'largest |difference|', formatSig(num(b.maxAbsDiff), 3), 'largest |exact − estimate| over the cells'),
          h(doc, 'div', { class: 'ml-stat ml-scale-toggle' }, toggle),
        ),
        box,
      );
    }
    case 'bars':
      return h(doc, 'div', { class: 'ml-exp-block ml-exp-bars' }, heading(b.title), barChart(doc, { labels: b.labels, values: b.values.map(num), valueLabel: b.valueLabel }));
    case 'line': {
      const chart = new LineChart(doc, { labels: b.labels, values: b.values.map(num), xAxis: b.xAxis, yAxis: b.yAxis, ...(b.reference ? { reference: { value: b.reference.value, label: `${b.reference.label} ${formatSig(b.reference.value, 3)}` } } : {}) }, ctx.disposables);
      return h(doc, 'div', { class: 'ml-exp-block ml-exp-line' }, heading(b.title), chart.el);
    }
    case 'topk': {
      const a = b.answer;
      return h(
        doc,
        'div',
        { class: 'ml-exp-block ml-exp-topk' },
        heading(b.title),
        b.strTokens.length ? tokenStrip(doc, ctx.theme, { tokens: b.strTokens, showIndex: true }) : null,
        a
          ? h(doc, 'div', { class: 'ml-stats' }, stat(doc, 'answer', tokenChip(doc, a.str, { id: a.token })), stat(doc, 'rank', h(doc, 'span', { class: a.rank === 0 ? 'ml-good' : '' }, formatRank(a.rank)), '0 = the most likely next token'), stat(doc, 'logit', formatFixed(a.logit, 2)), stat(doc, 'probability', formatPercent(a.prob)))
          : null,
        topKTable(doc, { entries: b.entries, highlight: a?.token ?? null }),
      );
    }
    case 'table': {
      // Integers (indices, ranks) as they are; other numbers to 4 significant digits.
      const cell = (c: string | number | null) => (typeof c === 'string' ? h(doc, 'td', undefined, c) : h(doc, 'td', { class: 'ml-num', title: String(c) }, typeof c === 'number' && Number.isInteger(c) && Math.abs(c) < 1e6 ? String(c) : formatSig(num(c), 4)));
      return h(
        doc,
        'div',
        { class: 'ml-exp-block ml-exp-table' },
        heading(b.title),
        h(doc, 'table', { class: 'ml-table' }, h(doc, 'thead', undefined, h(doc, 'tr', undefined, ...b.columns.map((c) => h(doc, 'th', undefined, c)))), h(doc, 'tbody', undefined, ...b.rows.map((r) => h(doc, 'tr', undefined, ...r.map(cell))))),
      );
    }
    case 'tokens': {
      const values = b.values.map(num);
      let iMax = -1;
      values.forEach((v, i) => Number.isFinite(v) && (iMax < 0 || v > values[iMax]!) && (iMax = i));
      const titles = b.tokens.map((t, i) => `position ${i}  ${quoteToken(t)}  ${b.valueLabel} ${formatSig(values[i]!, 4)}`);
      return h(
        doc,
        'div',
        { class: 'ml-exp-block ml-exp-tokens' },
        heading(b.title),
        iMax >= 0 ? h(doc, 'p', { class: 'ml-note' }, `largest ${b.valueLabel} ${formatSig(values[iMax]!, 4)} on `, tokenChip(doc, b.tokens[iMax] ?? '', { index: iMax }), ` · colour: red positive, blue negative, scaled to the largest |${b.valueLabel}|`) : null,
        tokenStrip(doc, ctx.theme, { tokens: b.tokens, values: values.map((v) => (Number.isFinite(v) ? v : null)), scale: 'diverging', titles }),
      );
    }
    case 'stats':
      return h(doc, 'div', { class: 'ml-exp-block ml-stats' }, ...b.items.map((it) => stat(doc, it.label, formatValue(it.value, it.format), it.title ?? (it.value === null ? undefined : String(it.value)))));
    case 'ref': {
      const s = b.summary;
      return h(
        doc,
        'div',
        { class: 'ml-exp-block ml-exp-ref' },
        h(doc, 'h3', undefined, b.title),
        h(doc, 'p', { class: 'ml-note' }, `${b.rows} ${b.rowAxis} × ${b.cols} ${b.colAxis} values of ${b.valueLabel}: too many to draw here. They are in the run folder, ${b.file} at ${b.path}; the HTML report (MechLens: Export Report (HTML)) draws them.`),
        h(doc, 'div', { class: 'ml-stats' }, stat(doc, 'min', formatSig(num(s.min), 4)), stat(doc, 'max', formatSig(num(s.max), 4))),
        s.top.length ? h(doc, 'ol', { class: 'ml-toplist' }, ...s.top.map((t) => h(doc, 'li', { class: t.value >= 0 ? 'ml-pos' : 'ml-neg' }, `${b.rowAxis} ${t.row}, ${b.colAxis} ${t.col} `, h(doc, 'span', { class: 'ml-num' }, formatSigned(t.value, 4))))) : null,
      );
    }
    default: {
      const never: never = b;
      throw new Error(`unknown experiment block '${(never as { type?: unknown }).type as string}'`);
    }
  }
}

export function sectionId(s: Pick<ExperimentSection, 'index' | 'group'>, i: number): string {
  return `ml-exp-${i}-${s.index}`;
}

function renderSection(s: ExperimentSection, i: number, ctx: ViewContext, run?: Pick<ExperimentState, 'title' | 'model'>): HTMLElement {
  const { doc } = ctx;
  const meta = [s.kind, s.group !== null ? `group ${s.group}` : null, `${formatSig(s.elapsedMs / 1000, 2)} s`].filter(Boolean).join(' · ');
  const el = section(doc, s.title, meta, ...(s.partial ? [h(doc, 'p', { class: 'ml-bad' }, 'Cancelled part-way: cells not computed are missing (grey).')] : []));
  el.id = sectionId(s, i);
  el.classList.add('ml-exp-section');
  el.dataset.kind = s.kind;
  el.dataset.index = String(s.index);
  if (s.checks?.length) el.appendChild(checksTable(doc, s.checks));
  for (const n of s.notes ?? []) el.appendChild(h(doc, 'p', { class: 'ml-note ml-exp-note' }, n));
  // Exported figures say where they came from: the experiment, its prompt group and the model.
  const context = run ? [run.title, s.group !== null ? `group ${s.group}` : null, run.model].filter(Boolean).join(' · ') : undefined;
  for (const b of s.blocks) el.appendChild(renderBlock(b, ctx, s.title, context));
  if (s.blocks.length === 0 && !s.checks?.length) el.appendChild(h(doc, 'p', { class: 'ml-empty' }, 'No result.'));
  return el;
}

export function renderExperiment(st: ExperimentState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  const checks = st.sections.flatMap((s) => s.checks ?? []);
  const met = checks.filter((c) => c.ok).length;
  const badges = [
    st.run?.cancelled ? h(doc, 'span', { class: 'ml-badge ml-bad', title: 'the run was cancelled: later analyses are missing' }, 'cancelled: partial results') : null,
    checks.length ? h(doc, 'span', { class: `ml-badge ml-exp-checks-badge ${met === checks.length ? 'ml-good' : 'ml-bad'}`, title: 'expect blocks of the experiment' }, `${met} of ${checks.length} expectations met`) : null,
  ];
  const info = h(
    doc,
    'div',
    { class: 'ml-stats' },
    stat(doc, 'analyses', String(st.sections.length)),
    st.run ? stat(doc, 'run', st.run.id, st.run.dir) : null,
    st.run ? stat(doc, 'time', `${formatSig(st.run.elapsedMs / 1000, 3)} s`) : null,
  );
  const toc = st.sections.length > 1
    ? h(
        doc,
        'nav',
        { class: 'ml-exp-toc', 'aria-label': 'analyses' },
        h(doc, 'ol', undefined, ...st.sections.map((s, i) => {
          const ok = s.checks?.length ? s.checks.every((c) => c.ok) : null;
          return h(doc, 'li', undefined, h(doc, 'a', { href: `#${sectionId(s, i)}` }, s.title), ok === null ? null : h(doc, 'span', { class: ok ? 'ml-good' : 'ml-bad' }, ok ? ' ✓' : ' ✗'));
        })),
      )
    : null;
  return h(
    doc,
    'div',
    { class: 'ml-view ml-experiment' },
    panelHeader(doc, st.title, st.model, ...badges),
    st.description ? h(doc, 'p', { class: 'ml-description' }, st.description) : null,
    h(doc, 'p', { class: 'ml-note ml-exp-metric' }, `Metric: ${st.metric}. Patching: 1 = the clean behaviour is restored, 0 = no effect, negative = worse.`),
    info,
    toc,
    ...(st.sections.length ? st.sections.map((s, i) => renderSection(s, i, ctx, st)) : [h(doc, 'p', { class: 'ml-empty' }, 'This run has no results.')]),
  );
}
