/**
 * The DOM-free half of the heatmap: layout, label thinning, pixel -> cell lookup, rasterising
 * values to RGBA, and one painter-agnostic drawing routine shared by the canvas (screen, PNG)
 * and the SVG exporter, so an exported figure is the figure on screen.
 *
 * Axes: `values[row][col]`, rows drawn top to bottom (row 0 at the top, like plotly imshow),
 * columns left to right.
 */
import type { HeatmapData } from '../../protocol/webview.js';
import { type ChartTheme, type ColorLut, type Palette, type ScaleKind, colorAt, cssRgb, lutIndex, scaleT, textOn, valueColor } from '../colors.js';
import { formatFixed, formatTick, niceIntStep, niceTicks, truncateLabel } from '../format.js';

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** How column labels are drawn: rotation in degrees (clockwise from horizontal text) and every `step`-th label. */
export interface LabelPlan {
  rotate: 0 | 45;
  step: number;
}

/** Text width in CSS px at the layout's font size. */
export type Measure = (text: string) => number;

/** Width estimate when no canvas is available (jsdom, SVG export): 0.6 em per character. */
export function estimateMeasure(fontSize: number): Measure {
  return (t) => [...t].length * fontSize * 0.6;
}

export interface LayoutInput {
  nRows: number;
  nCols: number;
  rowLabels: readonly string[];
  colLabels: readonly string[];
  rowAxis: string;
  colAxis: string;
  valueLabel: string;
  /** Drawn at the top when not null. */
  title: string | null;
  /** Available width in CSS px; the figure may end up narrower (cells stop growing at maxCell). */
  width: number;
  fontSize: number;
  measure: Measure;
  scale: ScaleKind;
  /** Resolved colour range (see resolveZmax). */
  zmax: number;
  /** Sequential scales: the colour floor (see resolveZmin); 0 otherwise. */
  zmin?: number;
  /** Square cells (attention patterns); otherwise rows are at least minRowHeight tall. */
  square: boolean;
  /** Largest cell side in CSS px. */
  maxCell: number;
  /** Rows shrink (below one pixel if need be: cells are then binned) past this plot height. */
  maxPlotHeight: number;
  minRowHeight: number;
  /**
   * Smallest cell width in CSS px for axes of at most MIN_CELL_MAX_COLS columns (tokens, layers,
   * heads): below it the figure grows wider than `width` and its box scrolls sideways. Longer
   * axes (neurons) bin instead. 0: cells may shrink to fit.
   */
  minCell?: number;
}

/** Axes longer than this bin their cells rather than scroll (3072 neurons would be metres wide). */
export const MIN_CELL_MAX_COLS = 256;

export interface Tick {
  value: number;
  label: string;
  /** y in CSS px of the figure. */
  y: number;
}

export interface HeatmapLayout {
  width: number;
  height: number;
  fontSize: number;
  lineH: number;
  title: { text: string; x: number; y: number } | null;
  plot: Rect;
  nRows: number;
  nCols: number;
  cellW: number;
  cellH: number;
  /** Truncated labels (full ones stay in the data for hover/export). */
  rowLabels: string[];
  colLabels: string[];
  rowStep: number;
  colPlan: LabelPlan;
  /** Centre of the rotated row-axis title, and of the column-axis title. */
  rowAxisTitle: { x: number; y: number };
  colAxisTitle: { x: number; y: number };
  colorbar: Rect;
  zlo: number;
  zhi: number;
  ticks: Tick[];
  /** Centre of the rotated value label next to the colour bar. */
  valueLabelPos: { x: number; y: number };
}

/** A sequential scale's floor: data.zmin when it is finite and below the range's top, else 0. */
export function resolveZmin(data: Pick<HeatmapData, 'zmin'>, zmax: number): number {
  const z = data.zmin;
  return z !== undefined && Number.isFinite(z) && z < zmax ? z : 0;
}

/** The colour range: data.zmax when given (> 0), else max |value| (max value for sequential); 1 for an all-zero map. */
export function resolveZmax(data: Pick<HeatmapData, 'values' | 'zmax'>): number {
  if (data.zmax !== undefined && Number.isFinite(data.zmax) && data.zmax > 0) return data.zmax;
  let m = 0;
  for (const row of data.values) for (const v of row) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m > 0 ? m : 1;
}

/**
 * Column-label plan for `n` labels of at most `maxW` px on cells `cellW` wide: horizontal when
 * they fit; otherwise 45° when each fits on its own diagonal; otherwise thinned to every
 * nice-numbered label (1, 2, 5, 10, ...) — horizontally for short labels (neuron indices),
 * at 45° for long ones (tokens).
 */
export function planColumnLabels(maxW: number, cellW: number, lineH: number): LabelPlan {
  const w = Math.max(cellW, 1e-6);
  const stepH = niceIntStep((maxW + 8) / w);
  if (stepH === 1) return { rotate: 0, step: 1 };
  const step45 = niceIntStep((lineH * 1.3) / w);
  if (step45 === 1) return { rotate: 45, step: 1 };
  if (maxW <= lineH * 3) return { rotate: 0, step: stepH };
  return { rotate: 45, step: step45 };
}

/** Every `step`-th row label when rows are shorter than a line of text. */
export function planRowLabels(cellH: number, fontSize: number): number {
  return niceIntStep((fontSize + 2) / Math.max(cellH, 1e-6));
}

export function computeLayout(inp: LayoutInput): HeatmapLayout {
  const fs = inp.fontSize;
  const lineH = Math.round(fs * 1.35);
  const m = inp.measure;
  const nRows = Math.max(0, inp.nRows);
  const nCols = Math.max(0, inp.nCols);
  const rowLabels = Array.from({ length: nRows }, (_, i) => truncateLabel(inp.rowLabels[i] ?? String(i), 18));
  const colLabels = Array.from({ length: nCols }, (_, i) => truncateLabel(inp.colLabels[i] ?? String(i), 16));
  const maxRowW = rowLabels.reduce((a, l) => Math.max(a, m(l)), 0);
  const maxColW = colLabels.reduce((a, l) => Math.max(a, m(l)), 0);

  const zlo = inp.scale === 'sequential' ? (inp.zmin ?? 0) : -inp.zmax;
  const zhi = inp.zmax;
  const tickValues = niceTicks(zlo, zhi, inp.scale === 'sequential' ? 5 : 5);
  const tickStep = tickValues.length > 1 ? (tickValues[1] ?? 0) - (tickValues[0] ?? 0) : Math.abs(zhi - zlo);
  const tickLabels = tickValues.map((v) => formatTick(v, tickStep || 1));
  const maxTickW = tickLabels.reduce((a, l) => Math.max(a, m(l)), 0);

  const right = 16 + 12 + 5 + maxTickW + 8 + lineH + 4;
  let left = 4 + lineH + 6 + maxRowW + 6;
  const fit = (l: number) => {
    const availW = Math.max(40, inp.width - l - right);
    let cellW = nCols > 0 ? Math.min(inp.maxCell, availW / nCols) : 0;
    if (!inp.square && inp.minCell && nCols <= MIN_CELL_MAX_COLS) cellW = Math.max(cellW, inp.minCell);
    let cellH: number;
    if (inp.square) {
      cellH = cellW;
      if (nRows * cellH > inp.maxPlotHeight && nRows > 0) {
        cellH = inp.maxPlotHeight / nRows;
        cellW = Math.min(cellW, cellH);
      }
    } else {
      cellH = Math.min(inp.maxCell, Math.max(cellW, inp.minRowHeight));
      if (nRows * cellH > inp.maxPlotHeight && nRows > 0) cellH = inp.maxPlotHeight / nRows;
      // The row axis title is drawn rotated along the plot: a strip of one or two rows grows tall
      // enough to hold it whole (it was clipped to "sender laye").
      const titleH = m(inp.rowAxis) + 8;
      if (nRows > 0 && nRows * cellH < titleH) cellH = titleH / nRows;
    }
    return { cellW, cellH, plan: planColumnLabels(maxColW, cellW, lineH) };
  };
  let f = fit(left);
  // A 45° label reaches left of its column by ~0.71 of its width (plus half its height): make
  // room for the first one. Narrower cells move the anchor left, so settle in a few rounds.
  for (let i = 0; i < 3 && f.plan.rotate === 45; i++) {
    const reach = (maxColW + fs * 0.5) * 0.71 - f.cellW / 2 + 6;
    if (reach <= left) break;
    left = reach;
    f = fit(left);
  }
  const { cellW, cellH, plan } = f;
  const plotW = cellW * nCols;
  const plotH = cellH * nRows;
  const shownColW = plan.step > 1 ? colLabels.filter((_, i) => i % plan.step === 0).reduce((a, l) => Math.max(a, m(l)), 0) : maxColW;
  const colBlockH = plan.rotate === 0 ? lineH : shownColW * 0.71 + lineH * 0.71;

  const top = inp.title !== null ? lineH + 12 : Math.ceil(lineH / 2) + 2;
  const bottom = 6 + colBlockH + 6 + lineH + 4;
  const plot = { x: left, y: top, w: plotW, h: plotH };
  const cbH = Math.max(plotH, 100);
  const colorbar = { x: left + plotW + 16, y: top, w: 12, h: cbH };
  const width = Math.ceil(colorbar.x + colorbar.w + 5 + maxTickW + 8 + lineH + 4);
  const height = Math.ceil(Math.max(top + plotH + bottom, top + cbH + lineH / 2 + 4));
  const ticks = tickValues.map((value, i) => ({
    value,
    label: tickLabels[i] ?? '',
    y: colorbar.y + (1 - (value - zlo) / (zhi - zlo || 1)) * cbH,
  }));
  let title: HeatmapLayout['title'] = null;
  if (inp.title !== null) {
    let text = inp.title;
    while (text.length > 4 && m(text) > width - 8) text = `${[...text].slice(0, -2).join('')}…`;
    title = { text, x: 4, y: 4 + lineH / 2 };
  }
  return {
    width,
    height,
    fontSize: fs,
    lineH,
    title,
    plot,
    nRows,
    nCols,
    cellW,
    cellH,
    rowLabels,
    colLabels,
    rowStep: planRowLabels(cellH, fs),
    colPlan: plan,
    rowAxisTitle: { x: 4 + lineH / 2, y: top + plotH / 2 },
    colAxisTitle: { x: left + plotW / 2, y: top + plotH + 6 + colBlockH + 6 + lineH / 2 },
    colorbar,
    zlo,
    zhi,
    ticks,
    valueLabelPos: { x: colorbar.x + colorbar.w + 5 + maxTickW + 8 + lineH / 2, y: top + cbH / 2 },
  };
}

// ---------------------------------------------------------------------------------------------
// Hit testing and binning

/** [start, end) of the cells that bin `bin` of `nBins` covers when n cells share nBins pixels. */
export function binRange(bin: number, nBins: number, n: number): [number, number] {
  if (nBins >= n) return [bin, bin + 1];
  const start = Math.floor((bin * n) / nBins);
  const end = Math.max(start + 1, Math.floor(((bin + 1) * n) / nBins));
  return [start, Math.min(end, n)];
}

/** The cell with the largest |value| in rows [r0, r1) × cols [c0, c1); NaN only when all are. */
export function representative(values: readonly (readonly number[])[], r0: number, r1: number, c0: number, c1: number): { row: number; col: number; value: number } {
  let best = { row: r0, col: c0, value: NaN };
  let bestAbs = -1;
  for (let r = r0; r < r1; r++) {
    const row = values[r];
    if (!row) continue;
    for (let c = c0; c < c1; c++) {
      const v = row[c];
      if (v === undefined || Number.isNaN(v)) continue;
      const a = Math.abs(v);
      if (a > bestAbs) {
        bestAbs = a;
        best = { row: r, col: c, value: v };
      }
    }
  }
  return best;
}

export interface HoverHit {
  /** The cell reported: the one under the cursor, or when cells are narrower than a pixel, the largest |value| under it (the one whose colour is shown). */
  row: number;
  col: number;
  value: number;
  /** Cells under the cursor's pixel: [start, end) per axis (one cell unless binned). */
  rows: [number, number];
  cols: [number, number];
}

/** Maps a point in figure CSS px to the cell under it; null outside the plot. */
export function hitTest(layout: HeatmapLayout, values: readonly (readonly number[])[], x: number, y: number): HoverHit | null {
  const { plot, nRows, nCols, cellW, cellH } = layout;
  if (nRows === 0 || nCols === 0) return null;
  const px = x - plot.x;
  const py = y - plot.y;
  if (px < 0 || py < 0 || px >= plot.w || py >= plot.h) return null;
  const axis = (p: number, cell: number, n: number, extent: number): [number, number] => {
    if (cell >= 1) {
      const i = Math.min(n - 1, Math.floor(p / cell));
      return [i, i + 1];
    }
    // Cells thinner than a CSS pixel: this pixel covers a bin of cells.
    const bins = Math.max(1, Math.floor(extent));
    return binRange(Math.min(bins - 1, Math.floor(p)), bins, n);
  };
  const rows = axis(py, cellH, nRows, plot.h);
  const cols = axis(px, cellW, nCols, plot.w);
  const rep = representative(values, rows[0], rows[1], cols[0], cols[1]);
  return { row: rep.row, col: rep.col, value: rep.value, rows, cols };
}

/**
 * Values to an RGBA image of imgW × imgH pixels (one pixel per cell when the image is as large
 * as the matrix; otherwise each pixel shows its bin's largest-|value| cell, so a single strong
 * neuron among 3072 stays visible instead of being skipped by nearest-neighbour sampling).
 */
export function rasterize(values: readonly (readonly number[])[], nRows: number, nCols: number, imgW: number, imgH: number, lut: ColorLut, zmax: number, scale: ScaleKind, zmin = 0): Uint8ClampedArray {
  const out = new Uint8ClampedArray(imgW * imgH * 4);
  const missing = lut.missing;
  const direct = imgW === nCols && imgH === nRows;
  for (let by = 0; by < imgH; by++) {
    const [r0, r1] = direct ? [by, by + 1] : binRange(by, imgH, nRows);
    for (let bx = 0; bx < imgW; bx++) {
      let v: number;
      if (direct) v = values[by]?.[bx] ?? NaN;
      else {
        const [c0, c1] = binRange(bx, imgW, nCols);
        v = representative(values, r0, r1, c0, c1).value;
      }
      const o = (by * imgW + bx) * 4;
      const t = scaleT(v, zmax, scale, zmin);
      if (Number.isNaN(t)) {
        out[o] = missing[0];
        out[o + 1] = missing[1];
        out[o + 2] = missing[2];
      } else {
        const i = lutIndex(lut, t) * 4;
        out[o] = lut.rgba[i] ?? 0;
        out[o + 1] = lut.rgba[i + 1] ?? 0;
        out[o + 2] = lut.rgba[i + 2] ?? 0;
      }
      out[o + 3] = 255;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Painting (canvas and SVG share this)

export interface TextStyle {
  fill: string;
  size: number;
  family: string;
  weight?: 'normal' | 'bold';
  align: 'start' | 'middle' | 'end';
  /** Rotation in degrees around the anchor (negative = counter-clockwise). */
  rotate?: number;
}

/** The drawing primitives the heatmap needs; implemented over a 2D canvas and over SVG text. */
export interface Painter {
  rect(x: number, y: number, w: number, h: number, fill: string): void;
  strokeRect(x: number, y: number, w: number, h: number, stroke: string, width: number): void;
  line(x1: number, y1: number, x2: number, y2: number, stroke: string, width: number): void;
  /** Text vertically centred on y. */
  text(t: string, x: number, y: number, style: TextStyle): void;
  /** The matrix of cells filling layout.plot. */
  cells(layout: HeatmapLayout): void;
  /** A vertical colour ramp over rect, zhi at the top. */
  colorRamp(rect: Rect, stops: { offset: number; color: string }[]): void;
}

export interface PaintOptions {
  theme: ChartTheme;
  scale: ScaleKind;
  zmax: number;
  /** Sequential scales: the colour floor. */
  zmin?: number;
  rowAxis: string;
  colAxis: string;
  valueLabel: string;
  /** Print values in cells that are large enough. */
  annotate: boolean;
  values: readonly (readonly number[])[];
  selected?: { row: number; col: number } | null;
  /** Fill the background (exports); the screen canvas stays transparent over the page. */
  background: boolean;
}

/** Colour-ramp stops for the bar: zhi at offset 0 (top), zlo at offset 1. */
export function rampStops(palette: Palette, scale: ScaleKind, n = 11): { offset: number; color: string }[] {
  const out: { offset: number; color: string }[] = [];
  for (let i = 0; i < n; i++) {
    const f = i / (n - 1);
    const t = scale === 'sequential' ? 1 - f : 1 - 2 * f;
    out.push({ offset: f, color: cssRgb(colorAt(palette, t)) });
  }
  return out;
}

export function paintHeatmap(p: Painter, L: HeatmapLayout, o: PaintOptions): void {
  const th = o.theme;
  const fs = L.fontSize;
  if (o.background) p.rect(0, 0, L.width, L.height, th.bg);
  if (L.title) p.text(L.title.text, L.title.x, L.title.y, { fill: th.fg, size: fs + 1, family: th.font, weight: 'bold', align: 'start' });
  p.cells(L);

  const { plot } = L;
  if (o.annotate) annotateCells(p, L, o);
  p.strokeRect(plot.x - 0.5, plot.y - 0.5, plot.w + 1, plot.h + 1, th.grid, 1);
  if (o.selected && o.selected.row < L.nRows && o.selected.col < L.nCols) {
    const x = plot.x + o.selected.col * L.cellW;
    const y = plot.y + o.selected.row * L.cellH;
    p.strokeRect(x + 1, y + 1, Math.max(2, L.cellW - 2), Math.max(2, L.cellH - 2), th.fg, 2);
  }

  // Row labels (right-aligned, centred on their row), thinned to every rowStep-th.
  for (let r = 0; r < L.nRows; r += L.rowStep) {
    const y = plot.y + (r + 0.5) * L.cellH;
    p.text(L.rowLabels[r] ?? '', plot.x - 6, y, { fill: th.fg, size: fs, family: th.mono, align: 'end' });
  }
  // Column labels: horizontal under the column, or anchored at the column and rotated -45°.
  const labelTop = plot.y + plot.h + 6;
  for (let c = 0; c < L.nCols; c += L.colPlan.step) {
    const x = plot.x + (c + 0.5) * L.cellW;
    const label = L.colLabels[c] ?? '';
    if (L.colPlan.step > 1) p.line(x, plot.y + plot.h, x, plot.y + plot.h + 3, th.muted, 1);
    if (L.colPlan.rotate === 0) p.text(label, x, labelTop + L.lineH / 2, { fill: th.fg, size: fs, family: th.mono, align: 'middle' });
    else p.text(label, x + fs * 0.35, labelTop + fs * 0.35, { fill: th.fg, size: fs, family: th.mono, align: 'end', rotate: -45 });
  }
  p.text(o.rowAxis, L.rowAxisTitle.x, L.rowAxisTitle.y, { fill: th.muted, size: fs, family: th.font, align: 'middle', rotate: -90 });
  p.text(o.colAxis, L.colAxisTitle.x, L.colAxisTitle.y, { fill: th.muted, size: fs, family: th.font, align: 'middle' });

  // Colour bar with ticks and the value label.
  const cb = L.colorbar;
  p.colorRamp(cb, rampStops(th.palette, o.scale));
  p.strokeRect(cb.x - 0.5, cb.y - 0.5, cb.w + 1, cb.h + 1, th.grid, 1);
  for (const t of L.ticks) {
    p.line(cb.x + cb.w, t.y, cb.x + cb.w + 3, t.y, th.muted, 1);
    p.text(t.label, cb.x + cb.w + 5, t.y, { fill: th.fg, size: fs, family: th.font, align: 'start' });
  }
  p.text(o.valueLabel, L.valueLabelPos.x, L.valueLabelPos.y, { fill: th.muted, size: fs, family: th.font, align: 'middle', rotate: -90 });
}

/** Whether values fit inside cells: e.g. '−0.35' needs about 5 characters of room. */
export function canAnnotate(L: HeatmapLayout): boolean {
  return L.cellW >= L.fontSize * 0.6 * 5 + 4 && L.cellH >= L.fontSize + 3;
}

/**
 * Decimals for in-cell values: three significant digits of zmax, at most 3 decimals (zmax 1.62 -> '0.71', '−0.02';
 * zmax 0.05 -> '0.012'), like plotly's text_auto='.2f' but scale-aware. Noise prints as 0.00.
 */
export function annotationDecimals(zmax: number): number {
  if (!(zmax > 0) || !Number.isFinite(zmax)) return 2;
  return Math.max(0, Math.min(3, 2 - Math.floor(Math.log10(zmax))));
}

function annotateCells(p: Painter, L: HeatmapLayout, o: PaintOptions): void {
  if (!canAnnotate(L)) return;
  const size = Math.max(9, L.fontSize - 1);
  const decimals = annotationDecimals(o.zmax);
  // Skip labels wider than their cell rather than letting them run into the neighbours.
  const maxChars = Math.floor((L.cellW - 4) / (size * 0.62));
  for (let r = 0; r < L.nRows; r++) {
    for (let c = 0; c < L.nCols; c++) {
      const v = o.values[r]?.[c];
      if (v === undefined || Number.isNaN(v)) continue;
      const bg = valueColor(v, o.zmax, o.theme.palette, o.scale, o.zmin ?? 0);
      const label = formatFixed(v, decimals);
      if ([...label].length > maxChars) continue;
      p.text(label, L.plot.x + (c + 0.5) * L.cellW, L.plot.y + (r + 0.5) * L.cellH, { fill: textOn(bg), size, family: o.theme.font, align: 'middle' });
    }
  }
}
