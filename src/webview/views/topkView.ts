/**
 * The narrow, live side view: the last tokens of the prompt under the cursor and the model's
 * top-k next tokens; a message when there is nothing to show (no model, empty line, error).
 */
import type { TopKViewState } from '../../protocol/webview.js';
import { tokenChip, tokenStrip } from '../components/tokens.js';
import { topKTable } from '../components/topk.js';
import type { ViewContext } from '../context.js';
import { h } from '../dom.js';
import { formatPercent } from '../format.js';

/** How many trailing tokens the side view shows. */
export const TAIL_TOKENS = 8;

export function renderTopK(st: TopKViewState, ctx: ViewContext): HTMLElement {
  const { doc } = ctx;
  const r = st.result;
  const parts: (HTMLElement | null)[] = [];
  if (st.model) parts.push(h(doc, 'div', { class: 'ml-side-model ml-muted', title: 'model' }, st.model));
  if (!r) {
    parts.push(h(doc, 'p', { class: 'ml-empty' }, st.message ?? (st.model ? 'Put the cursor on a prompt to see the next-token predictions.' : 'No model loaded.')));
    return h(doc, 'div', { class: 'ml-view ml-topk-view ml-narrow' }, ...parts);
  }
  const n = r.strTokens.length;
  const from = Math.max(0, n - TAIL_TOKENS);
  parts.push(
    h(doc, 'div', { class: 'ml-side-label ml-muted' }, from > 0 ? `last ${n - from} of ${n} tokens` : `${n} tokens`),
    h(doc, 'div', { class: 'ml-tail' }, from > 0 ? h(doc, 'span', { class: 'ml-ellipsis ml-muted' }, '…') : null, tokenStrip(doc, ctx.theme, { tokens: r.strTokens.slice(from), ids: r.tokens.slice(from), offset: from })),
    topKTable(doc, { entries: r.topK, highlight: r.answer?.token ?? null, compact: true }),
  );
  if (r.answer) {
    const a = r.answer;
    parts.push(h(doc, 'p', { class: 'ml-side-answer' }, 'answer ', tokenChip(doc, a.str, { id: a.token }), ` rank ${a.rank} · ${formatPercent(a.prob)}`));
  }
  if (st.message) parts.push(h(doc, 'p', { class: 'ml-note' }, st.message));
  return h(doc, 'div', { class: 'ml-view ml-topk-view ml-narrow' }, ...parts);
}
