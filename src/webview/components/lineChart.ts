/**
 * A line chart over categorical x (logit lens over residual stream positions: 0_pre, 0_mid,
 * ..., final_post), drawn as inline SVG whose text is styled by CSS (theme colours follow VS
 * Code). Hover anywhere above an x position shows its label and value.
 */
import { type Disposables, Tooltip, h, observeWidth, s, setChildren } from '../dom.js';
import { formatSig, formatTick, niceTicks, truncateLabel } from '../format.js';
import { estimateMeasure, planColumnLabels } from './heatmapCore.js';

export interface LineChartProps {
  /** x categories in order. */
  labels: string[];
  /** values[i] at labels[i]. */
  values: number[];
  xAxis: string;
  yAxis: string;
  /** Plot height in CSS px (without axis labels). Default 220. */
  height?: number;
  /** A dashed horizontal reference, e.g. the final logit difference. */
  reference?: { value: number; label: string };
  /** Fixed width; default the container's. */
  width?: number;
}

export const MOCK_LINE_PROPS: LineChartProps = {
  labels: ['0_pre', '0_mid', '1_pre', '1_mid', 'final_post'],
  values: [-0.01, 1.06, 1.64, 2.39, 2.78],
  xAxis: 'residual stream',
  yAxis: 'logit diff',
};

export interface LineLayout {
  width: number;
  height: number;
  plot: { x: number; y: number; w: number; h: number };
  ylo: number;
  yhi: number;
  yTicks: number[];
  yStep: number;
  xStep: number;
  rotate: 0 | 45;
  labelStep: number;
}

/** Layout of the chart for a width; the y domain always includes 0 (sign matters for attributions). */
export function lineLayout(p: LineChartProps, width: number, fontSize = 12): LineLayout {
  const measure = estimateMeasure(fontSize);
  const lineH = Math.round(fontSize * 1.35);
  const finite = p.values.filter(Number.isFinite);
  if (p.reference && Number.isFinite(p.reference.value)) finite.push(p.reference.value);
  let lo = Math.min(0, ...finite);
  let hi = Math.max(0, ...finite);
  if (lo === hi) hi = lo + 1;
  const pad = (hi - lo) * 0.06;
  lo = lo < 0 ? lo - pad : lo;
  hi += pad;
  const yTicks = niceTicks(lo, hi, 6);
  const yStep = yTicks.length > 1 ? (yTicks[1] ?? 0) - (yTicks[0] ?? 0) : 1;
  const tickW = yTicks.reduce((a, t) => Math.max(a, measure(formatTick(t, yStep))), 0);
  const left = lineH + 8 + tickW + 8;
  const right = 16;
  const plotW = Math.max(60, width - left - right);
  const n = Math.max(1, p.labels.length);
  const xStep = n > 1 ? plotW / (n - 1) : plotW;
  const maxLabel = p.labels.reduce((a, l) => Math.max(a, measure(truncateLabel(l, 14))), 0);
  const plan = planColumnLabels(maxLabel, xStep, lineH);
  const labelBlock = plan.rotate === 0 ? lineH : maxLabel * 0.71 + lineH * 0.71;
  const plotH = p.height ?? 220;
  const top = lineH / 2 + 4;
  return {
    width: left + plotW + right,
    height: top + plotH + 6 + labelBlock + 6 + lineH + 4,
    plot: { x: left, y: top, w: plotW, h: plotH },
    ylo: lo,
    yhi: hi,
    yTicks,
    yStep,
    xStep,
    rotate: plan.rotate,
    labelStep: plan.step,
  };
}

export class LineChart {
  readonly el: HTMLElement;
  private readonly svgHost: HTMLDivElement;
  private readonly tooltip: Tooltip;
  layout: LineLayout | null = null;

  constructor(private readonly doc: Document, private readonly p: LineChartProps, disposables?: Disposables) {
    this.svgHost = h(doc, 'div', { class: 'ml-linechart-figure' });
    this.tooltip = new Tooltip(doc, this.svgHost);
    this.el = h(doc, 'div', { class: 'ml-linechart' }, this.svgHost);
    if (p.width !== undefined) this.draw(p.width);
    else {
      const off = observeWidth(this.svgHost, 640, (w) => this.draw(w));
      disposables?.add(off);
    }
  }

  draw(width: number): void {
    const doc = this.doc;
    const p = this.p;
    const fs = 12;
    const L = lineLayout(p, width, fs);
    this.layout = L;
    const { plot } = L;
    const xOf = (i: number) => plot.x + (p.labels.length > 1 ? i * L.xStep : plot.w / 2);
    const yOf = (v: number) => plot.y + (1 - (v - L.ylo) / (L.yhi - L.ylo)) * plot.h;
    const svg = s(doc, 'svg', { class: 'ml-svg', width: L.width, height: L.height, viewBox: `0 0 ${L.width} ${L.height}`, role: 'img', 'aria-label': `${p.yAxis} by ${p.xAxis}` });
    // Gridlines and y ticks.
    for (const t of L.yTicks) {
      const y = yOf(t);
      svg.appendChild(s(doc, 'line', { class: t === 0 ? 'ml-axis-zero' : 'ml-grid', x1: plot.x, x2: plot.x + plot.w, y1: y, y2: y }));
      svg.appendChild(s(doc, 'text', { class: 'ml-tick', x: plot.x - 6, y, 'text-anchor': 'end', 'dominant-baseline': 'central' }, formatTick(t, L.yStep)));
    }
    if (p.reference && Number.isFinite(p.reference.value)) {
      const y = yOf(p.reference.value);
      svg.appendChild(s(doc, 'line', { class: 'ml-reference', x1: plot.x, x2: plot.x + plot.w, y1: y, y2: y }));
      // Label at the left end, where logit-lens curves usually start near 0, away from the line.
      const above = y - plot.y > 18;
      svg.appendChild(s(doc, 'text', { class: 'ml-tick ml-reference-label', x: plot.x + 6, y: above ? y - 6 : y + 14, 'text-anchor': 'start' }, p.reference.label));
    }
    // x labels (thinned/rotated like the heatmap's).
    const labelTop = plot.y + plot.h + 6;
    p.labels.forEach((l, i) => {
      if (i % L.labelStep !== 0 && i !== p.labels.length - 1) return;
      const x = xOf(i);
      const text = truncateLabel(l, 14);
      if (L.rotate === 0) svg.appendChild(s(doc, 'text', { class: 'ml-tick', x, y: labelTop + fs * 0.7, 'text-anchor': 'middle', 'dominant-baseline': 'central' }, text));
      else svg.appendChild(s(doc, 'text', { class: 'ml-tick', x: x + 4, y: labelTop + 4, 'text-anchor': 'end', 'dominant-baseline': 'central', transform: `rotate(-45 ${x + 4} ${labelTop + 4})` }, text));
      svg.appendChild(s(doc, 'line', { class: 'ml-grid', x1: x, x2: x, y1: plot.y + plot.h, y2: plot.y + plot.h + 3 }));
    });
    // Axis titles.
    svg.appendChild(s(doc, 'text', { class: 'ml-axis-title', x: plot.x + plot.w / 2, y: L.height - 8, 'text-anchor': 'middle' }, p.xAxis));
    const yx = 4 + fs * 0.7;
    const yy = plot.y + plot.h / 2;
    svg.appendChild(s(doc, 'text', { class: 'ml-axis-title', x: yx, y: yy, 'text-anchor': 'middle', 'dominant-baseline': 'central', transform: `rotate(-90 ${yx} ${yy})` }, p.yAxis));
    // The line and its points.
    const pts = p.values.map((v, i) => (Number.isFinite(v) ? `${xOf(i).toFixed(1)},${yOf(v).toFixed(1)}` : null)).filter((x): x is string => x !== null);
    svg.appendChild(s(doc, 'polyline', { class: 'ml-line', points: pts.join(' ') }));
    p.values.forEach((v, i) => {
      if (Number.isFinite(v)) svg.appendChild(s(doc, 'circle', { class: 'ml-point', cx: xOf(i), cy: yOf(v), r: 3 }));
    });
    const guide = s(doc, 'line', { class: 'ml-guide', x1: 0, x2: 0, y1: plot.y, y2: plot.y + plot.h, visibility: 'hidden' });
    const focus = s(doc, 'circle', { class: 'ml-point-focus', cx: 0, cy: 0, r: 5, visibility: 'hidden' });
    svg.append(guide, focus);
    // Hover: nearest x category.
    const overlay = s(doc, 'rect', { class: 'ml-overlay', x: plot.x - L.xStep / 2, y: plot.y, width: plot.w + L.xStep, height: plot.h, fill: 'transparent' });
    overlay.addEventListener('mousemove', (e) => {
      const rect = svg.getBoundingClientRect();
      const x = e.clientX - rect.left;
      const i = this.indexAt(x);
      if (i === null) return;
      const v = p.values[i] ?? NaN;
      const cx = xOf(i);
      for (const [el, attrs] of [
        [guide, { x1: cx, x2: cx }],
        [focus, { cx, cy: Number.isFinite(v) ? yOf(v) : -10 }],
      ] as const) {
        for (const [k, val] of Object.entries(attrs)) el.setAttribute(k, String(val));
        el.setAttribute('visibility', 'visible');
      }
      this.tooltip.show(cx, Number.isFinite(v) ? yOf(v) : plot.y, [p.labels[i] ?? '', [p.yAxis, formatSig(v, 4)]]);
    });
    overlay.addEventListener('mouseleave', () => {
      guide.setAttribute('visibility', 'hidden');
      focus.setAttribute('visibility', 'hidden');
      this.tooltip.hide();
    });
    svg.appendChild(overlay);
    setChildren(this.svgHost, svg, this.tooltip.el);
    this.tooltip.hide();
  }

  /** The category nearest to x (CSS px in the chart), or null outside the plot. */
  indexAt(x: number): number | null {
    const L = this.layout;
    const n = this.p.labels.length;
    if (!L || n === 0) return null;
    const i = n > 1 ? Math.round((x - L.plot.x) / L.xStep) : 0;
    return i < 0 || i >= n ? null : i;
  }
}
