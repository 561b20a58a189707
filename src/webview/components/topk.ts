/**
 * Top-k next-token table (TransformerLens test_prompt's "Top 0th token. Logit: 17.01 Prob: 23.57%"
 * as a table): rank, token chip, logit, probability with a bar on an absolute 0-100% scale so
 * a confident model looks confident.
 */
import type { TopKEntry } from '../../protocol/engine.js';
import { h } from '../dom.js';
import { formatFixed, formatPercent } from '../format.js';
import { tokenChip } from './tokens.js';

export interface TopKTableProps {
  /** Entries in rank order (entries[0] is the most likely next token). */
  entries: TopKEntry[];
  /** Token id to highlight (the annotated answer). */
  highlight?: number | null;
  /** Narrow side view: drops the logit column. Default false. */
  compact?: boolean;
}

export const MOCK_TOPK_PROPS: TopKTableProps = {
  entries: [
    { token: 5335, str: ' Mary', logit: 18.31, prob: 0.6812 },
    { token: 606, str: ' them', logit: 15.52, prob: 0.0418 },
    { token: 262, str: ' the', logit: 15.2, prob: 0.0303 },
    { token: 1757, str: ' John', logit: 14.95, prob: 0.0236 },
  ],
  highlight: 5335,
};

export function probBar(doc: Document, p: number): HTMLDivElement {
  const fill = h(doc, 'div', { class: 'ml-probbar-fill' });
  fill.style.width = `${Math.max(0, Math.min(1, Number.isFinite(p) ? p : 0)) * 100}%`;
  return h(doc, 'div', { class: 'ml-probbar', title: `p = ${String(p)}` }, h(doc, 'div', { class: 'ml-probbar-track' }, fill), h(doc, 'span', { class: 'ml-num' }, formatPercent(p)));
}

export function topKTable(doc: Document, p: TopKTableProps): HTMLTableElement {
  const compact = p.compact ?? false;
  const head = h(doc, 'tr', undefined, h(doc, 'th', { class: 'ml-num', title: 'rank (0 = most likely)' }, '#'), h(doc, 'th', undefined, 'token'), compact ? null : h(doc, 'th', { class: 'ml-num' }, 'logit'), h(doc, 'th', undefined, 'probability'));
  const body = h(doc, 'tbody');
  p.entries.forEach((e, i) => {
    const row = h(
      doc,
      'tr',
      { class: e.token === p.highlight ? 'ml-highlight' : undefined },
      h(doc, 'td', { class: 'ml-num ml-muted' }, i),
      h(doc, 'td', undefined, tokenChip(doc, e.str, { id: e.token })),
      compact ? null : h(doc, 'td', { class: 'ml-num', title: String(e.logit) }, formatFixed(e.logit, 2)),
      h(doc, 'td', { class: 'ml-prob-cell' }, probBar(doc, e.prob)),
    );
    body.appendChild(row);
  });
  return h(doc, 'table', { class: `ml-table ml-topk${compact ? ' ml-compact' : ''}` }, h(doc, 'thead', undefined, head), body);
}
