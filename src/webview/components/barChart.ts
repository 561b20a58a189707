/**
 * Horizontal signed bars (per-component direct logit attribution): one row per label, bars
 * grow right (positive, red) or left (negative, blue) from a shared zero line, the value
 * printed at the end. Plain HTML/CSS so text stays crisp and the chart reflows with the panel.
 */
import { h } from '../dom.js';
import { formatSigned, formatTick, niceTicks } from '../format.js';

export interface BarChartProps {
  /** One label per bar, top to bottom (e.g. embed, pos_embed, 0_attn_out, 0_mlp_out, ...). */
  labels: string[];
  /** values[i] belongs to labels[i]. */
  values: number[];
  /** What a value means (axis caption), e.g. "logit diff contribution". */
  valueLabel: string;
  /** Mark the n largest |values| bold. Default 3. */
  emphasizeTop?: number;
}

export const MOCK_BAR_PROPS: BarChartProps = {
  labels: ['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out'],
  values: [0.12, -0.03, 0.4, -0.25, 1.8, 0.05],
  valueLabel: 'logit diff',
};

/** The axis span: always includes 0, padded 5% so end labels fit. */
export function barDomain(values: readonly number[]): [number, number] {
  let lo = 0;
  let hi = 0;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  if (lo === hi) return [-1, 1];
  const pad = (hi - lo) * 0.05;
  return [lo < 0 ? lo - pad : 0, hi > 0 ? hi + pad : 0];
}

export function barChart(doc: Document, p: BarChartProps): HTMLElement {
  const [lo, hi] = barDomain(p.values);
  const pct = (v: number) => ((v - lo) / (hi - lo)) * 100;
  const zero = pct(0);
  const top = new Set(
    p.values
      .map((v, i) => [Math.abs(v), i] as const)
      .sort((a, b) => b[0] - a[0])
      .slice(0, p.emphasizeTop ?? 3)
      .map(([, i]) => i),
  );
  const rows = p.labels.map((label, i) => {
    const v = p.values[i] ?? NaN;
    const bar = h(doc, 'div', { class: `ml-bar ${v >= 0 ? 'ml-bar-pos' : 'ml-bar-neg'}` });
    if (Number.isFinite(v)) {
      const a = pct(Math.min(0, v));
      const b = pct(Math.max(0, v));
      bar.style.left = `${a}%`;
      bar.style.width = `${Math.max(0.3, b - a)}%`;
    }
    const track = h(doc, 'div', { class: 'ml-bar-track' }, bar);
    const zeroLine = h(doc, 'div', { class: 'ml-bar-zero' });
    zeroLine.style.left = `${zero}%`;
    track.appendChild(zeroLine);
    return h(
      doc,
      'div',
      { class: `ml-bar-row${top.has(i) ? ' ml-emph' : ''}`, title: `${label}: ${String(v)}` },
      h(doc, 'span', { class: 'ml-bar-label' }, label),
      track,
      h(doc, 'span', { class: 'ml-num ml-bar-value' }, formatSigned(v, 3)),
    );
  });
  // Tick row under the bars, aligned with the track column.
  const ticks = niceTicks(lo, hi, 5);
  const step = ticks.length > 1 ? (ticks[1] ?? 0) - (ticks[0] ?? 0) : 1;
  const axis = h(doc, 'div', { class: 'ml-bar-axis' });
  for (const t of ticks) {
    const tk = h(doc, 'span', { class: 'ml-bar-tick' }, formatTick(t, step));
    tk.style.left = `${pct(t)}%`;
    axis.appendChild(tk);
  }
  const axisRow = h(doc, 'div', { class: 'ml-bar-row ml-bar-axis-row' }, h(doc, 'span'), axis, h(doc, 'span'));
  const caption = h(doc, 'div', { class: 'ml-bar-row ml-bar-caption' }, h(doc, 'span'), h(doc, 'span', { class: 'ml-muted' }, p.valueLabel), h(doc, 'span'));
  return h(doc, 'div', { class: 'ml-barchart', role: 'img', 'aria-label': `${p.valueLabel} per component` }, ...rows, axisRow, caption);
}
