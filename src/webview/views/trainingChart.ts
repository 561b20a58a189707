/**
 * A line chart over a numeric x (training step, position) with a linear or logarithmic y: the
 * training panel's loss curve and its per-position loss. Inline SVG styled by the panel's CSS
 * (theme colours follow VS Code), so it stays crisp and costs one polyline however many points
 * the curve has; hover shows the nearest point's x and y.
 */
import { type Disposables, Tooltip, h, observeWidth, s, setChildren } from '../dom.js';
import { formatSig, formatTick, niceTicks } from '../format.js';

export interface StepChartProps {
  /** x of each point, increasing. */
  x: number[];
  /** y of each point (non-finite values, and values <= 0 on a log scale, are left out). */
  y: number[];
  xAxis: string;
  yAxis: string;
  /** Logarithmic y axis. Default false. */
  log?: boolean;
  /** Plot height in CSS px. Default 240. */
  height?: number;
  /** Fixed width (tests); default the container's. */
  width?: number;
  /** How x prints in the hover (default: an integer). */
  formatX?: (x: number) => string;
}

export interface StepLayout {
  width: number;
  height: number;
  plot: { x: number; y: number; w: number; h: number };
  xlo: number;
  xhi: number;
  ylo: number;
  yhi: number;
  yTicks: number[];
  xTicks: number[];
  /** Points drawn (finite, and positive on a log scale). */
  drawn: number;
}

/** Ticks of a log axis: the powers of ten in [lo, hi], with 2 and 5 between them when there are few. */
export function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const out: number[] = [];
  const mults = b - a <= 2 ? [1, 2, 5] : [1];
  for (let e = a; e <= b; e++) for (const m of mults) {
    const v = m * 10 ** e;
    if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
  }
  return out;
}

/** Layout for a width: x spans the data; y spans it with 6 % padding (log: in log space). */
export function stepLayout(p: StepChartProps, width: number): StepLayout {
  const ok = (v: number) => Number.isFinite(v) && (!p.log || v > 0);
  const ys = p.y.filter(ok);
  const xs = p.x.filter((_, i) => ok(p.y[i]!));
  let ylo = ys.length ? Math.min(...ys) : p.log ? 0.1 : 0;
  let yhi = ys.length ? Math.max(...ys) : 1;
  if (p.log) {
    const [l, u] = [Math.log10(ylo), Math.log10(yhi)];
    const pad = Math.max(0.05, (u - l) * 0.06);
    ylo = 10 ** (l - pad);
    yhi = 10 ** (u + pad);
  } else {
    // Losses are >= 0: the axis starts at 0 unless everything is far from it.
    if (ylo > 0 && ylo < (yhi - ylo) * 2) ylo = 0;
    if (ylo === yhi) yhi = ylo + 1;
    yhi += (yhi - ylo) * 0.06;
  }
  const xlo = xs.length ? Math.min(...xs) : 0;
  let xhi = xs.length ? Math.max(...xs) : 1;
  if (xhi === xlo) xhi = xlo + 1;
  const yTicks = p.log ? logTicks(ylo, yhi) : niceTicks(ylo, yhi, 5);
  const xTicks = niceTicks(xlo, xhi, Math.max(2, Math.min(8, Math.floor(width / 90)))).filter((t) => t >= xlo && t <= xhi && Number.isInteger(t));
  const left = 64;
  const right = 14;
  const top = 10;
  const plotH = p.height ?? 240;
  return {
    width,
    height: top + plotH + 44,
    plot: { x: left, y: top, w: Math.max(60, width - left - right), h: plotH },
    xlo, xhi, ylo, yhi, yTicks, xTicks,
    drawn: ys.length,
  };
}

export class StepChart {
  readonly el: HTMLElement;
  private readonly host: HTMLDivElement;
  private readonly tooltip: Tooltip;
  layout: StepLayout | null = null;

  constructor(private readonly doc: Document, private readonly p: StepChartProps, disposables?: Disposables) {
    this.host = h(doc, 'div', { class: 'ml-linechart-figure' });
    this.tooltip = new Tooltip(doc, this.host);
    this.el = h(doc, 'div', { class: 'ml-linechart ml-stepchart', 'data-points': p.x.length, 'data-last-x': p.x.length ? p.x[p.x.length - 1] : '', 'data-scale': p.log ? 'log' : 'linear' }, this.host);
    if (p.width !== undefined) this.draw(p.width);
    else disposables?.add(observeWidth(this.host, 640, (w) => this.draw(w)));
  }

  draw(width: number): void {
    const { doc, p } = this;
    const L = stepLayout(p, width);
    this.layout = L;
    const { plot } = L;
    const fx = (x: number) => plot.x + ((x - L.xlo) / (L.xhi - L.xlo)) * plot.w;
    const fy = p.log
      ? (y: number) => plot.y + (1 - (Math.log10(y) - Math.log10(L.ylo)) / (Math.log10(L.yhi) - Math.log10(L.ylo))) * plot.h
      : (y: number) => plot.y + (1 - (y - L.ylo) / (L.yhi - L.ylo)) * plot.h;
    const svg = s(doc, 'svg', { class: 'ml-svg', width: L.width, height: L.height, viewBox: `0 0 ${L.width} ${L.height}`, role: 'img', 'aria-label': `${p.yAxis} by ${p.xAxis}${p.log ? ' (log scale)' : ''}` });
    const yStep = L.yTicks.length > 1 ? L.yTicks[1]! - L.yTicks[0]! : 1;
    for (const t of L.yTicks) {
      const y = fy(t);
      svg.appendChild(s(doc, 'line', { class: 'ml-grid', x1: plot.x, x2: plot.x + plot.w, y1: y, y2: y }));
      svg.appendChild(s(doc, 'text', { class: 'ml-tick', x: plot.x - 6, y, 'text-anchor': 'end', 'dominant-baseline': 'central' }, p.log ? formatSig(t, 2) : formatTick(t, yStep)));
    }
    const xStep = L.xTicks.length > 1 ? L.xTicks[1]! - L.xTicks[0]! : 1;
    for (const t of L.xTicks) {
      const x = fx(t);
      svg.appendChild(s(doc, 'line', { class: 'ml-grid', x1: x, x2: x, y1: plot.y + plot.h, y2: plot.y + plot.h + 4 }));
      svg.appendChild(s(doc, 'text', { class: 'ml-tick', x, y: plot.y + plot.h + 16, 'text-anchor': 'middle' }, formatTick(t, xStep)));
    }
    svg.appendChild(s(doc, 'line', { class: 'ml-axis-zero', x1: plot.x, x2: plot.x + plot.w, y1: plot.y + plot.h, y2: plot.y + plot.h }));
    svg.appendChild(s(doc, 'text', { class: 'ml-axis-title', x: plot.x + plot.w / 2, y: L.height - 6, 'text-anchor': 'middle' }, p.xAxis));
    const yy = plot.y + plot.h / 2;
    svg.appendChild(s(doc, 'text', { class: 'ml-axis-title', x: 12, y: yy, 'text-anchor': 'middle', 'dominant-baseline': 'central', transform: `rotate(-90 12 ${yy})` }, `${p.yAxis}${p.log ? ' (log)' : ''}`));
    const ok = (v: number) => Number.isFinite(v) && (!p.log || v > 0);
    const pts: string[] = [];
    p.x.forEach((x, i) => {
      const v = p.y[i]!;
      if (ok(v)) pts.push(`${fx(x).toFixed(1)},${fy(v).toFixed(1)}`);
    });
    svg.appendChild(s(doc, 'polyline', { class: 'ml-line', points: pts.join(' ') }));
    // One marker on the newest point, so a live curve shows where it is.
    const last = [...p.x.keys()].reverse().find((i) => ok(p.y[i]!));
    if (last !== undefined) svg.appendChild(s(doc, 'circle', { class: 'ml-point', cx: fx(p.x[last]!), cy: fy(p.y[last]!), r: 3 }));
    const focus = s(doc, 'circle', { class: 'ml-point-focus', cx: 0, cy: 0, r: 5, visibility: 'hidden' });
    svg.appendChild(focus);
    const overlay = s(doc, 'rect', { class: 'ml-overlay', x: plot.x, y: plot.y, width: plot.w, height: plot.h, fill: 'transparent' });
    overlay.addEventListener('mousemove', (e) => {
      const i = this.indexAt(e.clientX - svg.getBoundingClientRect().left);
      if (i === null) return;
      const v = p.y[i]!;
      if (!ok(v)) return;
      focus.setAttribute('cx', String(fx(p.x[i]!)));
      focus.setAttribute('cy', String(fy(v)));
      focus.setAttribute('visibility', 'visible');
      this.tooltip.show(fx(p.x[i]!), fy(v), [[p.xAxis, p.formatX ? p.formatX(p.x[i]!) : String(Math.round(p.x[i]!))], [p.yAxis, formatSig(v, 4)]]);
    });
    overlay.addEventListener('mouseleave', () => {
      focus.setAttribute('visibility', 'hidden');
      this.tooltip.hide();
    });
    svg.appendChild(overlay);
    setChildren(this.host, svg, this.tooltip.el);
    this.tooltip.hide();
  }

  /** The point whose x is nearest to a pixel offset in the chart, or null. */
  indexAt(px: number): number | null {
    const L = this.layout;
    const xs = this.p.x;
    if (!L || xs.length === 0) return null;
    const x = L.xlo + ((px - L.plot.x) / L.plot.w) * (L.xhi - L.xlo);
    let lo = 0, hi = xs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo > 0 && Math.abs(xs[lo - 1]! - x) < Math.abs(xs[lo]! - x) ? lo - 1 : lo;
  }
}
