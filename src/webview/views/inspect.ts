/**
 * Inspect view (TransformerLens `test_prompt` in a panel): the prompt's tokens as the model
 * split them, the annotated answer's rank/logit/probability (and the logit difference against
 * a wrong answer), the top-k next tokens, and the loss at every position.
 */
import type { InspectState } from '../../protocol/webview.js';
import { lossChart } from '../components/lossChart.js';
import { tokenChip, tokenStrip } from '../components/tokens.js';
import { topKTable } from '../components/topk.js';
import type { ViewContext } from '../context.js';
import { h } from '../dom.js';
import { formatFixed, formatPercent, formatRank, formatSig, formatSigned } from '../format.js';
import { panelHeader, promptText, section, stat } from './common.js';

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

  return h(
    doc,
    'div',
    { class: 'ml-view ml-inspect' },
    panelHeader(doc, 'Inspect prompt', st.model),
    promptText(doc, st.prompt),
    tokens,
    h(doc, 'div', { class: 'ml-columns' }, h(doc, 'div', { class: 'ml-column' }, ...cards, topk), h(doc, 'div', { class: 'ml-column' }, loss)),
  );
}
