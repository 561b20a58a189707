/**
 * An SAE feature's dashboard (as SAELens / Neuronpedia dashboards show one): how often it fires
 * on the corpus and how strongly, its top-activating contexts with the activating token marked,
 * the histogram of its activations, and the tokens its decoder direction promotes and suppresses
 * through the unembedding (its logit effect).
 */
import type { FeatureDashboardState } from '../../protocol/webview.js';
import { barChart } from '../components/barChart.js';
import { colorChip, tokenChip } from '../components/tokens.js';
import type { ViewContext } from '../context.js';
import { valueColor } from '../colors.js';
import { h } from '../dom.js';
import { formatPercent, formatSig, formatSigned } from '../format.js';
import { panelHeader, section, stat } from './common.js';

export function renderFeature(st: FeatureDashboardState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  const r = st.result;
  const stats = h(
    doc,
    'div',
    { class: 'ml-stats' },
    stat(doc, 'density', formatPercent(r.density), `fires on ${formatPercent(r.density)} of ${r.tokens.toLocaleString('en-US')} corpus tokens`),
    stat(doc, 'max activation', formatSig(r.maxAct, 4)),
    stat(doc, 'mean when active', formatSig(r.meanActive, 4)),
    stat(doc, 'corpus tokens', r.tokens.toLocaleString('en-US')),
    ...(r.logDensityFromFile !== undefined ? [stat(doc, 'log10 density (sparsity file)', formatSig(r.logDensityFromFile, 3))] : []),
  );

  // Each context a line of tokens; the activating token is coloured by its activation.
  const contexts = r.contexts.map((c) =>
    h(
      doc,
      'li',
      { class: 'ml-feature-context', 'data-act': c.act, title: `corpus row ${c.row}, position ${c.pos}: activation ${c.act}` },
      h(doc, 'span', { class: 'ml-num ml-feature-act' }, formatSig(c.act, 3)),
      h(
        doc,
        'span',
        { class: 'ml-tokens ml-feature-tokens' },
        ...c.strTokens.map((t, j) => {
          const chip = tokenChip(doc, t, {});
          if (j === c.highlight) {
            chip.classList.add('ml-feature-hit');
            colorChip(chip, valueColor(c.act, Math.max(r.maxAct, 1e-9), ctx.theme.palette, 'sequential'));
          }
          return chip;
        }),
      ),
    ),
  );
  const top = section(doc, 'Top-activating contexts', `the ${r.contexts.length} largest activations on the corpus, the activating token marked`, r.contexts.length ? h(doc, 'ol', { class: 'ml-feature-contexts' }, ...contexts) : h(doc, 'p', { class: 'ml-empty' }, 'The feature never fires on this corpus.'));

  const hist = r.histogram;
  const histLabels = hist.counts.map((_, i) => `${formatSig(hist.edges[i] ?? 0, 2)}–${formatSig(hist.edges[i + 1] ?? 0, 2)}`);
  const histogram = section(doc, 'Activation histogram', 'how many active tokens fall in each activation range', hist.counts.length ? barChart(doc, { labels: histLabels, values: hist.counts, valueLabel: 'tokens', emphasizeTop: 0 }) : h(doc, 'p', { class: 'ml-empty' }, 'No active tokens.'));

  const effect = r.logitEffect;
  const list = (items: { str: string; value: number }[], cls: string) =>
    h(doc, 'ol', { class: `ml-toplist ${cls}` }, ...items.map((x) => h(doc, 'li', undefined, tokenChip(doc, x.str, {}), ' ', h(doc, 'span', { class: 'ml-num' }, formatSigned(x.value, 3)))));
  const logits = section(
    doc,
    'Logit effect',
    "the feature's decoder direction through the unembedding (W_dec[f] · W_U): the tokens it promotes and suppresses directly",
    effect ? h(doc, 'div', { class: 'ml-columns' }, h(doc, 'div', { class: 'ml-column' }, h(doc, 'h3', undefined, 'promoted'), list(effect.top, 'ml-promoted')), h(doc, 'div', { class: 'ml-column' }, h(doc, 'h3', undefined, 'suppressed'), list(effect.bottom, 'ml-suppressed'))) : h(doc, 'p', { class: 'ml-empty' }, 'This SAE does not write to the residual stream, so it has no direct logit effect.'),
  );

  return h(
    doc,
    'div',
    { class: 'ml-view ml-feature-dashboard', 'data-feature': r.feature },
    panelHeader(doc, `Feature #${r.feature}`, st.model),
    h(doc, 'p', { class: 'ml-note' }, `${st.architecture} SAE on ${st.hook} · ${st.sae} · corpus ${st.corpus}`),
    stats,
    top,
    histogram,
    logits,
  );
}
