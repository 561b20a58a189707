/**
 * Heatmap: the one component behind every matrix MechLens shows (patching results, per-head
 * DLA, attention patterns). Canvas-drawn from an RGBA raster (one putImageData, then a
 * nearest-neighbour scale), so 3072×12 cells cost one pass over the values; hover is a DOM
 * overlay, so moving the mouse never redraws. Exports go to the host (save dialog, clipboard).
 */
import type { HeatmapData } from '../../protocol/webview.js';
import { PAPER_THEME, type ChartTheme, type ColorLut, type ScaleKind, makeLut } from '../colors.js';
import type { HostActions } from '../context.js';
import { Disposables, Tooltip, h, observeWidth } from '../dom.js';
import { heatmapToCsv, heatmapToJson, heatmapToSvg } from '../export.js';
import { displayLabel, formatPercent, formatRelative, slug } from '../format.js';
import { button, checkbox } from '../ui/controls.js';
import {
  type HeatmapLayout,
  type HoverHit,
  type Measure,
  type Painter,
  type Rect,
  type TextStyle,
  canAnnotate,
  computeLayout,
  estimateMeasure,
  hitTest,
  paintHeatmap,
  rasterize,
  resolveZmax,
  resolveZmin,
} from './heatmapCore.js';

/**
 * Props (plain JSON apart from the callbacks). `data.values[row][col]`, with `data.rowAxis`
 * naming the rows (e.g. 'layer') and `data.colAxis` the columns (e.g. 'position').
 */
export interface HeatmapProps {
  data: HeatmapData;
  /** 'diverging' (default): RdBu-like centred at 0 over ±zmax; 'sequential': 0..zmax (attention probabilities). */
  scale?: ScaleKind;
  /** Draw data.title above the plot (and in exports). Default true. */
  showTitle?: boolean;
  /** Square cells (attention patterns). Default false: rows at least 14 px for readable labels. */
  square?: boolean;
  /** Largest cell side in CSS px. Default 44 (a 12×12 head map stays compact). */
  maxCell?: number;
  /** Plot height cap in CSS px; more rows get thinner (binned below one pixel). Default 560. */
  maxPlotHeight?: number;
  /** Fixed figure width in CSS px. Default: the container's width. */
  width?: number;
  /** A cell outlined as selected, e.g. the head shown large. Default none. */
  selected?: { row: number; col: number } | null;
  /** Toolbar with PNG/SVG export and CSV/JSON copy. Default true (needs `host`). */
  toolbar?: boolean;
  /** Print values inside cells when they fit. Default false (toolbar toggle). */
  annotate?: boolean;
  /** How hover values print: 'number' (default, 4 significant digits) or 'percent' (probabilities, e.g. attention). */
  valueFormat?: 'number' | 'percent';
  /** Export file name stem. Default slug(data.title). */
  fileStem?: string;
  /**
   * What the figure is of (the model, the prompt or group), added to the title of exported
   * figures so that a PNG in a paper draft still says where it came from.
   */
  context?: string;
  /** Click / Enter on a cell. */
  onCellClick?: (row: number, col: number) => void;
  /** The toolbar's "Values" toggle changed (to persist it). */
  onAnnotateChange?: (annotate: boolean) => void;
}

/** A small IOI-flavoured per-head map for tests and the preview. */
export const MOCK_HEATMAP_PROPS: HeatmapProps = {
  data: {
    title: 'Logit difference from each head',
    rowAxis: 'layer',
    colAxis: 'head',
    rowLabels: ['L0', 'L1', 'L2', 'L3'],
    colLabels: ['H0', 'H1', 'H2', 'H3'],
    values: [
      [0.01, -0.02, 0.03, 0.0],
      [0.12, -0.4, 0.05, 0.02],
      [0.9, 0.07, -0.05, 1.74],
      [-0.61, 0.02, 0.3, -0.01],
    ],
    valueLabel: 'logit diff',
  },
  selected: { row: 2, col: 3 },
};

export interface HeatmapEnv {
  doc: Document;
  theme: ChartTheme;
  /** Needed for the toolbar's exports. */
  host?: HostActions;
  disposables?: Disposables;
}

/** Fonts as the canvas wants them. */
function cssFont(size: number, family: string, weight: 'normal' | 'bold' = 'normal'): string {
  return `${weight === 'bold' ? 'bold ' : ''}${size}px ${family}`;
}

/** A 2D context, or null where there is no canvas implementation (jsdom). */
export function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D | null {
  try {
    return canvas.getContext('2d');
  } catch {
    return null;
  }
}

/** Text measurement with a canvas when there is one, else the 0.6 em estimate. */
export function canvasMeasure(doc: Document, theme: ChartTheme): Measure {
  const ctx = context2d(doc.createElement('canvas'));
  if (!ctx) return estimateMeasure(theme.fontSize);
  ctx.font = cssFont(theme.fontSize, theme.mono);
  return (t) => ctx.measureText(t).width;
}

/** Paints on a 2D canvas; the cell raster is cached per (values, palette, size). */
class CanvasPainter implements Painter {
  constructor(
    private readonly ctx: CanvasRenderingContext2D,
    private readonly doc: Document,
    private readonly values: readonly (readonly number[])[],
    private readonly lut: ColorLut,
    private readonly zmax: number,
    private readonly scale: ScaleKind,
    private readonly dpr: number,
    private readonly zmin = 0,
  ) {}
  rect(x: number, y: number, w: number, hh: number, fill: string): void {
    this.ctx.fillStyle = fill;
    this.ctx.fillRect(x, y, w, hh);
  }
  strokeRect(x: number, y: number, w: number, hh: number, stroke: string, width: number): void {
    this.ctx.strokeStyle = stroke;
    this.ctx.lineWidth = width;
    this.ctx.strokeRect(x, y, w, hh);
  }
  line(x1: number, y1: number, x2: number, y2: number, stroke: string, width: number): void {
    const c = this.ctx;
    c.strokeStyle = stroke;
    c.lineWidth = width;
    c.beginPath();
    c.moveTo(x1, y1);
    c.lineTo(x2, y2);
    c.stroke();
  }
  text(t: string, x: number, y: number, st: TextStyle): void {
    const c = this.ctx;
    c.save();
    c.font = cssFont(st.size, st.family, st.weight);
    c.fillStyle = st.fill;
    c.textAlign = st.align === 'middle' ? 'center' : st.align === 'end' ? 'right' : 'left';
    c.textBaseline = 'middle';
    c.translate(x, y);
    if (st.rotate) c.rotate((st.rotate * Math.PI) / 180);
    c.fillText(t, 0, 0);
    c.restore();
  }
  cells(L: HeatmapLayout): void {
    if (L.nRows === 0 || L.nCols === 0) return;
    // One pixel per cell, or per device pixel when cells are thinner than that (binned).
    const w = Math.min(L.nCols, Math.max(1, Math.round(L.plot.w * this.dpr)));
    const hh = Math.min(L.nRows, Math.max(1, Math.round(L.plot.h * this.dpr)));
    const off = this.doc.createElement('canvas');
    off.width = w;
    off.height = hh;
    const octx = context2d(off);
    if (!octx) return;
    const img = octx.createImageData(w, hh);
    img.data.set(rasterize(this.values, L.nRows, L.nCols, w, hh, this.lut, this.zmax, this.scale, this.zmin));
    octx.putImageData(img, 0, 0);
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(off, L.plot.x, L.plot.y, L.plot.w, L.plot.h);
  }
  colorRamp(r: Rect, stops: { offset: number; color: string }[]): void {
    const g = this.ctx.createLinearGradient(0, r.y, 0, r.y + r.h);
    for (const s of stops) g.addColorStop(s.offset, s.color);
    this.ctx.fillStyle = g;
    this.ctx.fillRect(r.x, r.y, r.w, r.h);
  }
}

export class Heatmap {
  readonly el: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  /** The layout of the last draw (null before the first). Exposed for tests. */
  layout: HeatmapLayout | null = null;
  private props: HeatmapProps;
  private readonly figure: HTMLDivElement;
  private readonly cursor: HTMLDivElement;
  private readonly tooltip: Tooltip;
  private readonly status: HTMLSpanElement;
  private readonly zmax: number;
  private readonly zmin: number;
  private width = 0;
  private readonly titleInToolbar: boolean;
  /** The "Values" toggle; hidden while cells are too small to print numbers in. */
  private valuesToggle: HTMLElement | null = null;
  private focusCell: { row: number; col: number } | null = null;
  private readonly disposables: Disposables;

  constructor(private readonly env: HeatmapEnv, props: HeatmapProps) {
    const doc = env.doc;
    this.props = props;
    this.zmax = resolveZmax(props.data);
    this.zmin = (props.scale ?? 'diverging') === 'sequential' ? resolveZmin(props.data, this.zmax) : 0;
    this.disposables = env.disposables ?? new Disposables();
    const d = props.data;
    this.canvas = h(doc, 'canvas', {
      class: 'ml-heatmap-canvas',
      tabindex: 0,
      role: 'img',
      'aria-label': `${d.title}: ${d.values.length} ${d.rowAxis} × ${d.values[0]?.length ?? 0} ${d.colAxis}, ${d.valueLabel}. Arrow keys move between cells.`,
      // The colour range drawn (the colour bar's ends), for tests and assistive tools.
      'data-zmin': String((props.scale ?? 'diverging') === 'sequential' ? this.zmin : -this.zmax),
      'data-zmax': String(this.zmax),
    });
    this.cursor = h(doc, 'div', { class: 'ml-heatmap-cursor' });
    this.cursor.hidden = true;
    this.figure = h(doc, 'div', { class: 'ml-heatmap-figure' }, this.canvas, this.cursor);
    this.tooltip = new Tooltip(doc, this.figure);
    this.status = h(doc, 'span', { class: 'ml-status', 'aria-live': 'polite' });
    this.el = h(doc, 'section', { class: 'ml-heatmap' });
    // With a toolbar the title sits in it (left of the buttons); exports always draw it.
    this.titleInToolbar = (props.toolbar ?? true) && env.host !== undefined;
    if (this.titleInToolbar && env.host) this.el.appendChild(this.buildToolbar(env.host));
    this.el.appendChild(this.figure);
    if (props.onCellClick) this.canvas.classList.add('ml-clickable');
    this.bindEvents();
    if (props.width !== undefined) this.draw(props.width);
    else this.disposables.add(observeWidth(this.figure, 640, (w) => this.draw(w)));
  }

  /** Changes the selected cell outline and redraws. */
  setSelected(sel: { row: number; col: number } | null): void {
    this.props = { ...this.props, selected: sel };
    this.draw(this.width);
  }

  private buildToolbar(host: HostActions): HTMLElement {
    const doc = this.env.doc;
    const p = this.props;
    const d = p.data;
    const stem = p.fileStem ?? slug(d.title, 'heatmap');
    const nCells = d.values.length * (d.values[0]?.length ?? 0);
    const bar = h(doc, 'div', { class: 'ml-toolbar ml-heatmap-toolbar' });
    if (p.showTitle ?? true) bar.appendChild(h(doc, 'h3', { class: 'ml-heatmap-title' }, d.title));
    bar.appendChild(h(doc, 'span', { class: 'ml-spacer' }));
    if (nCells > 0 && nCells <= 2500) {
      this.valuesToggle = checkbox(doc, {
          label: 'Values',
          checked: p.annotate ?? false,
          title: 'Print each value inside its cell (when the cells are large enough)',
          onChange: (v) => {
            this.props = { ...this.props, annotate: v };
            p.onAnnotateChange?.(v);
            this.draw(this.width);
          },
        });
      bar.appendChild(this.valuesToggle);
    }
    const run = (what: string, f: () => Promise<string>) => {
      this.status.textContent = `${what}…`;
      f().then(
        (msg) => (this.status.textContent = msg),
        (e: unknown) => (this.status.textContent = `${what} failed: ${e instanceof Error ? e.message : String(e)}`),
      );
    };
    const saved = (r: string | null) => (r ? `Saved ${r}` : '');
    const save = (format: 'png' | 'svg', content: () => string) =>
      run(`Saving ${format.toUpperCase()}`, async () => saved(await host.saveFile({ suggestedName: `${stem}.${format}`, format, content: content() })));
    const copy = (what: string, text: () => string) =>
      run('Copying', async () => {
        await host.copyText(text());
        return `Copied ${what}`;
      });
    // Label + buttons stay together when the toolbar wraps.
    const group = (label: string, ...buttons: HTMLElement[]) => h(doc, 'span', { class: 'ml-toolbar-group' }, h(doc, 'span', { class: 'ml-toolbar-label' }, label), ...buttons);
    bar.append(
      group(
        'Save',
        button(doc, { label: 'PNG', title: 'Save the figure as PNG (light background, 2× resolution)', onClick: () => save('png', () => this.toPngBase64()) }),
        button(doc, { label: 'SVG', title: 'Save the figure as SVG (light background)', onClick: () => save('svg', () => this.toSvg()) }),
      ),
      group(
        'Copy',
        button(doc, { label: 'CSV', title: 'Copy the values as CSV (full precision)', onClick: () => copy(`${d.values.length}×${d.values[0]?.length ?? 0} CSV`, () => heatmapToCsv(d)) }),
        button(doc, { label: 'JSON', title: 'Copy the data as JSON (full precision)', onClick: () => copy('JSON', () => heatmapToJson(d)) }),
      ),
      this.status,
    );
    return bar;
  }

  private layoutFor(width: number, theme: ChartTheme, measure: Measure, withTitle: boolean, forExport = false): HeatmapLayout {
    const p = this.props;
    const d = forExport ? { ...p.data, title: this.exportTitle() } : p.data;
    return computeLayout({
      nRows: d.values.length,
      nCols: d.values[0]?.length ?? 0,
      rowLabels: d.rowLabels.map(displayLabel),
      colLabels: d.colLabels.map(displayLabel),
      rowAxis: d.rowAxis,
      colAxis: d.colAxis,
      valueLabel: d.valueLabel,
      title: withTitle && (p.showTitle ?? true) ? d.title : null,
      width,
      fontSize: theme.fontSize,
      measure,
      scale: p.scale ?? 'diverging',
      zmax: this.zmax,
      zmin: this.zmin,
      square: p.square ?? false,
      maxCell: p.maxCell ?? 44,
      maxPlotHeight: p.maxPlotHeight ?? 560,
      minRowHeight: 14,
      minCell: 12,
    });
  }

  /** Lays out for `width` CSS px and paints (layout only, when there is no canvas). */
  draw(width: number): void {
    this.width = width;
    const theme = this.env.theme;
    const L = this.layoutFor(width, theme, canvasMeasure(this.env.doc, theme), !this.titleInToolbar);
    this.layout = L;
    this.showHit(null, 0, 0); // the old hover box would point at the old geometry
    if (this.valuesToggle) this.valuesToggle.hidden = !canAnnotate(L);
    const dpr = Math.max(1, this.env.doc.defaultView?.devicePixelRatio ?? 1);
    this.paintInto(this.canvas, L, theme, dpr, false);
  }

  private paintInto(canvas: HTMLCanvasElement, L: HeatmapLayout, theme: ChartTheme, dpr: number, background: boolean): boolean {
    canvas.width = Math.ceil(L.width * dpr);
    canvas.height = Math.ceil(L.height * dpr);
    canvas.style.width = `${L.width}px`;
    canvas.style.height = `${L.height}px`;
    const ctx = context2d(canvas);
    if (!ctx) return false; // jsdom: layout and hover still work, pixels are skipped
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, L.width, L.height);
    const p = this.props;
    const scale = p.scale ?? 'diverging';
    const painter = new CanvasPainter(ctx, this.env.doc, p.data.values, makeLut(theme.palette), this.zmax, scale, dpr, this.zmin);
    paintHeatmap(painter, L, {
      theme,
      scale,
      zmax: this.zmax,
      zmin: this.zmin,
      rowAxis: p.data.rowAxis,
      colAxis: p.data.colAxis,
      valueLabel: p.data.valueLabel,
      annotate: p.annotate ?? false,
      values: p.data.values,
      selected: p.selected ?? null,
      background,
    });
    return true;
  }

  /** The figure in the paper theme at 2× as base64 PNG (throws where there is no canvas). */
  toPngBase64(): string {
    const canvas = this.env.doc.createElement('canvas');
    const L = this.layoutFor(this.width || 800, PAPER_THEME, canvasMeasure(this.env.doc, PAPER_THEME), true, true);
    if (!this.paintInto(canvas, L, PAPER_THEME, 2, true)) throw new Error('no canvas available');
    const url = canvas.toDataURL('image/png');
    const comma = url.indexOf(',');
    if (!url.startsWith('data:image/png') || comma < 0) throw new Error('the canvas could not be encoded');
    return url.slice(comma + 1);
  }

  /** The title exports draw: the figure's, then what it is of. */
  exportTitle(): string {
    const c = this.props.context?.trim();
    return c ? `${this.props.data.title} — ${c}` : this.props.data.title;
  }

  toSvg(): string {
    const p = this.props;
    return heatmapToSvg(
      { ...p.data, rowLabels: p.data.rowLabels.map(displayLabel), colLabels: p.data.colLabels.map(displayLabel), title: (p.showTitle ?? true) ? this.exportTitle() : '' },
      { scale: p.scale ?? 'diverging', width: this.width || 800, square: p.square ?? false, annotate: p.annotate ?? false, selected: p.selected ?? null },
    );
  }

  /** The tooltip lines for a hit (exposed for tests). */
  hoverLines(hit: HoverHit): (string | [string, string])[] {
    const d = this.props.data;
    const lines: (string | [string, string])[] = [
      [`${d.rowAxis}`, displayLabel(d.rowLabels[hit.row] ?? String(hit.row))],
      [`${d.colAxis}`, displayLabel(d.colLabels[hit.col] ?? String(hit.col))],
      [d.valueLabel, this.props.valueFormat === 'percent' ? formatPercent(hit.value) : formatRelative(hit.value, this.zmax)],
    ];
    const binned = hit.rows[1] - hit.rows[0] > 1 || hit.cols[1] - hit.cols[0] > 1;
    if (binned) lines.push(`largest |value| of ${hit.rows[1] - hit.rows[0]}×${hit.cols[1] - hit.cols[0]} cells under the cursor`);
    return lines;
  }

  private showHit(hit: HoverHit | null, x: number, y: number): void {
    const L = this.layout;
    if (!hit || !L) {
      this.cursor.hidden = true;
      this.tooltip.hide();
      return;
    }
    const cw = Math.max(L.cellW, 1);
    const ch = Math.max(L.cellH, 1);
    const x0 = L.plot.x + (L.cellW >= 1 ? hit.col * L.cellW : (hit.cols[0] * L.plot.w) / L.nCols);
    const y0 = L.plot.y + (L.cellH >= 1 ? hit.row * L.cellH : (hit.rows[0] * L.plot.h) / L.nRows);
    Object.assign(this.cursor.style, { left: `${x0}px`, top: `${y0}px`, width: `${cw}px`, height: `${ch}px` });
    this.cursor.hidden = false;
    this.tooltip.show(x, y, this.hoverLines(hit));
  }

  private bindEvents(): void {
    const c = this.canvas;
    c.addEventListener('mousemove', (e) => {
      const L = this.layout;
      if (!L) return;
      const hit = hitTest(L, this.props.data.values, e.offsetX, e.offsetY);
      this.showHit(hit, e.offsetX, e.offsetY);
    });
    c.addEventListener('mouseleave', () => this.showHit(null, 0, 0));
    c.addEventListener('click', (e) => {
      const L = this.layout;
      if (!L || !this.props.onCellClick) return;
      const hit = hitTest(L, this.props.data.values, e.offsetX, e.offsetY);
      if (hit) this.props.onCellClick(hit.row, hit.col);
    });
    c.addEventListener('blur', () => this.showHit(null, 0, 0));
    c.addEventListener('keydown', (e) => {
      const L = this.layout;
      if (!L || L.nRows === 0 || L.nCols === 0) return;
      const f = this.focusCell ?? { row: 0, col: 0 };
      const moves: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
      const mv = moves[e.key];
      if (mv) {
        e.preventDefault();
        const row = this.focusCell ? Math.min(L.nRows - 1, Math.max(0, f.row + mv[0])) : 0;
        const col = this.focusCell ? Math.min(L.nCols - 1, Math.max(0, f.col + mv[1])) : 0;
        this.focusCell = { row, col };
        const value = this.props.data.values[row]?.[col] ?? NaN;
        const x = L.plot.x + (col + 0.5) * Math.max(L.cellW, L.plot.w / L.nCols);
        const y = L.plot.y + (row + 0.5) * Math.max(L.cellH, L.plot.h / L.nRows);
        this.showHit({ row, col, value, rows: [row, row + 1], cols: [col, col + 1] }, x, y);
      } else if (e.key === 'Enter' && this.focusCell && this.props.onCellClick) {
        this.props.onCellClick(this.focusCell.row, this.focusCell.col);
      }
    });
  }
}
