/**
 * Attribution view: direct logit attribution of the target direction (the answer's logit, or
 * answer − wrong) per residual component (bars), per head (layer × head heatmap: click a head
 * to select it), and the logit lens over the accumulated residual stream (line).
 */
import type { AttributionState } from '../../protocol/webview.js';
import { barChart } from '../components/barChart.js';
import { Heatmap } from '../components/heatmap.js';
import { LineChart } from '../components/lineChart.js';
import { tokenChip } from '../components/tokens.js';
import type { ViewContext } from '../context.js';
import { h } from '../dom.js';
import { formatSig, formatSigned } from '../format.js';
import { headLabel } from './attention.js';
import { panelHeader, promptText, section, stat } from './common.js';

/** 'logit diff' or 'logit' depending on the target. */
export function targetLabel(st: AttributionState): string {
  return st.target.wrong !== undefined ? 'logit diff' : 'logit';
}

/** The n heads with the largest |DLA|, strongest first. */
export function topHeads(headDla: number[][], n = 8): { layer: number; head: number; value: number }[] {
  const all: { layer: number; head: number; value: number }[] = [];
  headDla.forEach((row, layer) => row.forEach((value, head) => Number.isFinite(value) && all.push({ layer, head, value })));
  return all.sort((a, b) => Math.abs(b.value) - Math.abs(a.value)).slice(0, n);
}

export function renderAttribution(st: AttributionState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  if (st.layerLabels.length !== st.layerDla.length) throw new Error(`attribution: ${st.layerLabels.length} layer labels but ${st.layerDla.length} values`);
  if (st.logitLens.labels.length !== st.logitLens.values.length) throw new Error(`attribution: logit lens has ${st.logitLens.labels.length} labels but ${st.logitLens.values.length} values`);
  const what = targetLabel(st);
  const sum = st.layerDla.reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);

  const target = h(
    doc,
    'div',
    { class: 'ml-stats' },
    stat(doc, 'answer', tokenChip(doc, st.target.answer)),
    st.target.wrong !== undefined ? stat(doc, 'minus', tokenChip(doc, st.target.wrong)) : null,
    stat(doc, what, formatSig(st.total, 4), String(st.total)),
    stat(doc, 'sum of components', formatSig(sum, 4), `the components' direct contributions (TransformerLens's decompose_resid with apply_ln_to_stack): ${sum}`),
    st.unembedBias !== undefined ? stat(doc, '+ unembedding bias', formatSigned(st.unembedBias, 4), `b_U[answer]${st.target.wrong !== undefined ? ' − b_U[wrong]' : ''}: part of the ${what} that no component writes (${st.unembedBias})`) : null,
    st.lnFinalTerm !== undefined && st.lnFinalTerm !== null
      ? stat(doc, "+ final norm's weight and bias", formatSigned(st.lnFinalTerm, 4), `With processing "none" the final LayerNorm's weight and bias are not folded into the unembedding; direct logit attribution (as TransformerLens computes it) leaves them out, and this is what they add (${st.lnFinalTerm})`)
      : null,
  );

  const bars = section(doc, 'Direct logit attribution by component', `contribution of each component's output to the ${what} at the last position`, barChart(doc, { labels: st.layerLabels, values: st.layerDla, valueLabel: `${what} contribution` }));

  const nLayers = st.headDla.length;
  const nHeads = st.headDla[0]?.length ?? 0;
  const heatmap = new Heatmap(
    { doc, theme: ctx.theme, host: ctx.host, disposables: ctx.disposables },
    {
      data: {
        title: `Direct logit attribution per head (${what})`,
        rowAxis: 'layer',
        colAxis: 'head',
        rowLabels: Array.from({ length: nLayers }, (_, i) => `L${i}`),
        colLabels: Array.from({ length: nHeads }, (_, i) => `H${i}`),
        values: st.headDla,
        valueLabel: `${what} contribution`,
      },
      context: `${JSON.stringify(st.prompt.length > 60 ? `${st.prompt.slice(0, 57)}…` : st.prompt)} · ${st.model}`,
      annotate: ctx.ui.get('annotate')?.['head-dla'] ?? false,
      onAnnotateChange: (v) => ctx.ui.set('annotate', { ...(ctx.ui.get('annotate') ?? {}), 'head-dla': v }),
      onCellClick: (layer, head) => {
        ctx.host.selectHead(layer, head);
        heatmap.setSelected({ row: layer, col: head });
      },
      fileStem: 'dla-per-head',
    },
  );
  const top = topHeads(st.headDla);
  const topList = h(
    doc,
    'ol',
    { class: 'ml-toplist' },
    ...top.map((t) => {
      const li = h(doc, 'li', { class: t.value >= 0 ? 'ml-pos' : 'ml-neg', title: String(t.value), tabindex: 0 }, h(doc, 'span', { class: 'ml-mono' }, headLabel(t.layer, t.head)), ' ', h(doc, 'span', { class: 'ml-num' }, formatSigned(t.value, 3)));
      const pick = () => {
        ctx.host.selectHead(t.layer, t.head);
        heatmap.setSelected({ row: t.layer, col: t.head });
      };
      li.addEventListener('click', pick);
      li.addEventListener('keydown', (e) => e.key === 'Enter' && pick());
      return li;
    }),
  );
  const heads = section(doc, 'Per head', 'click a head to select it (other views can follow)', h(doc, 'div', { class: 'ml-row' }, h(doc, 'div', { class: 'ml-grow' }, heatmap.el), h(doc, 'div', { class: 'ml-side' }, h(doc, 'h3', undefined, 'Largest |DLA|'), topList)));

  const lens = new LineChart(
    doc,
    {
      labels: st.logitLens.labels,
      values: st.logitLens.values,
      xAxis: 'accumulated residual stream',
      yAxis: what,
      reference: { value: st.total, label: `final ${what} ${formatSig(st.total, 3)}` },
    },
    ctx.disposables,
  );
  // Attention-only models (and parallel attention+MLP blocks) have no resid_mid: say only what is shown.
  const hasMid = st.logitLens.labels.some((l) => l.endsWith('_mid'));
  const lensSection = section(doc, 'Logit lens', hasMid ? `the ${what} read off the residual stream after each layer's attention (_mid) and after its MLP (the next _pre)` : `the ${what} read off the residual stream entering each layer (_pre) and at the end (final_post)`, lens.el);

  const features = st.featureDla ? featureDlaSection(st.featureDla, what, doc) : st.featureDlaError ? section(doc, 'SAE features', null, h(doc, 'p', { class: 'ml-message ml-bad', role: 'alert' }, st.featureDlaError)) : null;

  return h(doc, 'div', { class: 'ml-view ml-attribution' }, panelHeader(doc, 'Logit lens and direct logit attribution', st.model), promptText(doc, st.prompt), target, bars, heads, lensSection, features);
}

/** The SAE's active features (largest |contribution| first), its decoder bias and error term: they add up to the hook's DLA. */
function featureDlaSection(f: NonNullable<AttributionState['featureDla']>, what: string, doc: Document): HTMLElement {
  const TOP = 20;
  const shown = f.features.slice(0, TOP);
  const rest = f.values.slice(TOP).reduce((a, v) => a + v, 0);
  const labels = [...shown.map((x) => `#${x}`), ...(f.features.length > TOP ? [`${f.features.length - TOP} more features`] : []), 'b_dec (decoder bias)', 'error term'];
  const values = [...f.values.slice(0, TOP), ...(f.features.length > TOP ? [rest] : []), f.bias, f.error];
  return section(
    doc,
    'SAE features: direct logit attribution',
    `each active feature's direct contribution to the ${what} through ${f.hook} (${f.sae}); with the decoder bias and the error term they add up to that hook's own DLA, ${formatSigned(f.total, 4)}`,
    h(doc, 'div', { class: 'ml-feature-dla', 'data-total': f.total }, barChart(doc, { labels, values, valueLabel: `${what} contribution` })),
  );
}
