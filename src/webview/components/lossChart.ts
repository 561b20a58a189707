/**
 * Per-position loss as a small column chart: column t shows the loss of predicting token t
 * (from the prefix up to t-1), so each bar stands over the token it is about. Height and colour
 * both encode the loss (sequential red), the hover gives the value and its probability.
 */
import { type ChartTheme, cssRgb, valueColor } from '../colors.js';
import { h } from '../dom.js';
import { formatPercent, formatSig, truncateLabel, visibleToken } from '../format.js';
import { quoteToken } from './tokens.js';

export interface LossChartProps {
  /** str_tokens of the prompt, length n. */
  tokens: string[];
  /** losses[t] = -log p(tokens[t+1] | tokens[..t]), length n-1 (TestPromptResult.perTokenLoss). */
  losses: number[];
}

export const MOCK_LOSS_PROPS: LossChartProps = {
  tokens: ['<|endoftext|>', 'When', ' Mary', ' and', ' John'],
  losses: [6.1, 9.8, 2.3, 5.2],
};

export function lossChart(doc: Document, theme: ChartTheme, p: LossChartProps): HTMLElement {
  const finite = p.losses.filter(Number.isFinite);
  const max = Math.max(1e-9, ...finite);
  const cols = p.losses.map((loss, i) => {
    const tok = p.tokens[i + 1] ?? '';
    const bar = h(doc, 'div', { class: 'ml-col-bar' });
    const f = Number.isFinite(loss) ? Math.max(0, loss) / max : 0;
    bar.style.height = `${Math.max(1, f * 100)}%`;
    bar.style.backgroundColor = cssRgb(valueColor(Math.max(0, loss), max, theme.palette, 'sequential'));
    return h(
      doc,
      'div',
      { class: 'ml-col', title: `position ${i + 1} ${quoteToken(tok)}\nloss ${formatSig(loss, 4)} nats (p = ${formatPercent(Math.exp(-loss))})` },
      h(doc, 'div', { class: 'ml-col-value ml-num' }, formatSig(loss, 2)),
      h(doc, 'div', { class: 'ml-col-track' }, bar),
      h(doc, 'div', { class: 'ml-col-label' }, truncateLabel(visibleToken(tok), 10)),
    );
  });
  const mean = finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN;
  return h(
    doc,
    'figure',
    { class: 'ml-colchart' },
    h(doc, 'div', { class: 'ml-cols', role: 'img', 'aria-label': `loss per position, max ${formatSig(max, 3)}` }, ...cols),
    h(doc, 'figcaption', { class: 'ml-muted' }, `loss per predicted token (nats) · mean ${formatSig(mean, 3)} · max ${formatSig(max, 3)}`),
  );
}
