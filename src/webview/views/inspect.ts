/**
 * Inspect view (TransformerLens `test_prompt` in a panel): the prompt's tokens as the model
 * split them, the annotated answer's rank/logit/probability (and the logit difference against
 * a wrong answer), the top-k next tokens, and the loss at every position; with an SAE set
 * (mechlens.sae), its top features on every token, and the prompt coloured by a chosen feature.
 */
import type { InspectFeatures, InspectState } from '../../protocol/webview.js';
import { lossChart } from '../components/lossChart.js';
import { tokenChip, tokenStrip } from '../components/tokens.js';
import { topKTable } from '../components/topk.js';
import type { ViewContext } from '../context.js';
import { h, setChildren } from '../dom.js';
import { formatFixed, formatPercent, formatRank, formatSig, formatSigned } from '../format.js';
import { panelHeader, promptText, section, stat } from './common.js';
import { button } from '../ui/controls.js';

export function renderInspect(st: InspectState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  const r = st.result;
  const n = r.strTokens.length;

  const tokens = section(doc, 'Tokens', `${n} token${n === 1 ? '' : 's'} · · marks a space, ⏎ a newline · hover for position and id`, tokenStrip(doc, ctx.theme, { tokens: r.strTokens, ids: r.tokens, showIndex: true }));

  const cards: HTMLElement[] = [];
  if (r.answer) {
    const a = r.answer;
    const items = [
      stat(doc, 'answer', tokenChip(doc, a.str, { id: a.token })),
      stat(doc, 'rank', h(doc, 'span', { class: a.rank === 0 ? 'ml-good' : a.rank < 10 ? '' : 'ml-bad' }, formatRank(a.rank)), '0 = the most likely next token'),
      stat(doc, 'logit', formatFixed(a.logit, 2), String(a.logit)),
      stat(doc, 'probability', formatPercent(a.prob), String(a.prob)),
    ];
    if (st.wrong) {
      const w = st.wrong;
      items.push(stat(doc, 'vs wrong', tokenChip(doc, w.str, { id: w.token })), stat(doc, 'logit diff', h(doc, 'span', { class: a.logit - w.logit >= 0 ? 'ml-good' : 'ml-bad' }, formatSigned(a.logit - w.logit, 3)), `logit(${a.str}) − logit(${w.str})`));
    }
    cards.push(section(doc, 'Answer', null, h(doc, 'div', { class: 'ml-stats' }, ...items)));
  }

  const topk = section(doc, `Top ${r.topK.length} next tokens`, 'after the last prompt token', topKTable(doc, { entries: r.topK, highlight: r.answer?.token ?? null }));

  const losses = r.perTokenLoss;
  const lossValues: (number | null)[] = [null, ...losses];
  const lossTitles = r.strTokens.map((t, i) => (i === 0 ? `position 0: no prediction for the first token` : `position ${i}: loss ${formatSig(losses[i - 1] ?? NaN, 4)} nats (p = ${formatPercent(Math.exp(-(losses[i - 1] ?? NaN)))})`));
  const loss = section(
    doc,
    'Loss per token',
    'each token coloured by how surprised the model was to see it (−log p given the tokens before it)',
    tokenStrip(doc, ctx.theme, { tokens: r.strTokens, values: lossValues, scale: 'sequential', titles: lossTitles }),
    lossChart(doc, ctx.theme, { tokens: r.strTokens, losses }),
  );

  const features = st.features
    ? featuresSection(st.features, ctx)
    : st.featuresError
      ? section(doc, 'SAE features', null, h(doc, 'p', { class: 'ml-message ml-bad', role: 'alert' }, st.featuresError))
      : null;

  return h(
    doc,
    'div',
    { class: 'ml-view ml-inspect' },
    panelHeader(doc, 'Inspect prompt', st.model),
    promptText(doc, st.prompt),
    tokens,
    h(doc, 'div', { class: 'ml-columns' }, h(doc, 'div', { class: 'ml-column' }, ...cards, topk), h(doc, 'div', { class: 'ml-column' }, loss)),
    features,
  );
}

/**
 * The SAE's features on the prompt: for each token its most active features (hook_sae_acts_post),
 * largest first; a click on a feature colours the prompt by that feature's activation.
 */
function featuresSection(f: InspectFeatures, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  const ids = Object.keys(f.acts).map(Number);
  // Start with the feature most active anywhere on the prompt.
  let chosen = ids.reduce((best, id) => (Math.max(...(f.acts[String(id)] ?? [0])) > Math.max(...(f.acts[String(best)] ?? [0])) ? id : best), ids[0] ?? -1);
  const strip = h(doc, 'div', { class: 'ml-sae-strip' });
  const caption = h(doc, 'p', { class: 'ml-note ml-sae-caption' });
  // The chosen feature's dashboard (top contexts over a corpus, histogram, logit effect) opens in its own panel.
  const act = ctx.host.panelAction;
  const status = h(doc, 'span', { class: 'ml-status', role: 'status' });
  const dashboard = act
    ? button(doc, {
        label: 'Open dashboard',
        title: "Top-activating contexts of the chosen feature over a corpus you pick, its activation histogram and logit effect",
        appearance: 'secondary',
        onClick: () => {
          status.textContent = '';
          act('sae.dashboard', { feature: chosen }).catch((e: unknown) => (status.textContent = e instanceof Error ? e.message : String(e)));
        },
      })
    : null;
  if (dashboard) dashboard.dataset.action = 'sae.dashboard';
  const buttons: HTMLElement[] = [];
  const show = () => {
    const values = f.acts[String(chosen)] ?? f.strTokens.map(() => 0);
    const max = Math.max(0, ...values);
    caption.textContent = chosen < 0 ? 'No feature is active on this prompt.' : `the prompt coloured by feature #${chosen} (largest activation ${formatSig(max, 3)})`;
    setChildren(strip, tokenStrip(doc, ctx.theme, { tokens: f.strTokens, values, scale: 'sequential', showIndex: true, titles: f.strTokens.map((t, i) => `position ${i}: feature #${chosen} = ${formatSig(values[i] ?? 0, 4)}`) }));
    strip.dataset.feature = String(chosen);
    for (const b of buttons) b.classList.toggle('ml-selected', b.dataset.feature === String(chosen));
  };
  const rows = f.strTokens.map((t, pos) => {
    const top = f.top[pos] ?? [];
    const cells = top.map((x) => {
      const b = h(doc, 'button', { class: 'ml-feature', type: 'button', 'data-feature': x.feature, title: `feature #${x.feature}: ${x.act} at position ${pos}; click to colour the prompt by it` }, `#${x.feature} `, h(doc, 'span', { class: 'ml-num' }, formatSig(x.act, 3)));
      b.addEventListener('click', () => {
        chosen = x.feature;
        show();
      });
      buttons.push(b);
      return b;
    });
    return h(doc, 'tr', undefined, h(doc, 'td', { class: 'ml-num' }, String(pos)), h(doc, 'td', undefined, tokenChip(doc, t, {})), h(doc, 'td', { class: 'ml-features' }, ...(cells.length ? cells : [h(doc, 'span', { class: 'ml-muted' }, 'none active')])));
  });
  show();
  const note = `${f.architecture} SAE on ${f.hook} · ${f.d_sae.toLocaleString('en-US')} features · L0 ${formatSig(f.l0, 3)} active per token · explained variance ${formatPercent(f.explainedVariance)} · ${f.sae}`;
  return section(
    doc,
    'SAE features',
    note,
    h(doc, 'div', { class: 'ml-toolbar' }, caption, dashboard, status),
    strip,
    h(doc, 'table', { class: 'ml-table ml-sae-table' }, h(doc, 'thead', undefined, h(doc, 'tr', undefined, h(doc, 'th', { class: 'ml-num' }, 'pos'), h(doc, 'th', undefined, 'token'), h(doc, 'th', undefined, 'most active features (activation)'))), h(doc, 'tbody', undefined, ...rows)),
  );
}
