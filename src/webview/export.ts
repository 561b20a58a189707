/**
 * Exports of a heatmap: CSV and JSON carry the data at full precision (what a researcher pastes
 * into pandas/numpy); SVG is the figure itself, drawn by the same paintHeatmap() as the canvas,
 * in the light "paper" theme.
 */
import type { HeatmapData } from '../protocol/webview.js';
import { PAPER_THEME, type ChartTheme, type ScaleKind, cssRgb, makeLut, lutIndex, scaleT } from './colors.js';
import { type HeatmapLayout, type Painter, type Rect, type TextStyle, computeLayout, estimateMeasure, paintHeatmap, rasterize, resolveZmax, resolveZmin } from './components/heatmapCore.js';

/** RFC 4180 field: quoted when it has a comma, quote, line break or leading/trailing space (tokens like ' Mary'). */
export function csvField(s: string): string {
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * CSV with a header row `rowAxis/colAxis, colLabels...` and one line per row:
 * `rowLabel, values...` (shortest round-trip decimal for each number; NaN as 'NaN').
 */
export function heatmapToCsv(d: HeatmapData): string {
  const lines = [[`${d.rowAxis}/${d.colAxis}`, ...d.colLabels].map(csvField).join(',')];
  d.values.forEach((row, r) => {
    lines.push([csvField(d.rowLabels[r] ?? String(r)), ...row.map((v) => String(v))].join(','));
  });
  return `${lines.join('\n')}\n`;
}

/**
 * The HeatmapData as JSON (same field names as the protocol, so it round-trips into another
 * MechLens panel or `json.load`), one matrix row per line. NaN/Infinity become null (JSON has none).
 */
export function heatmapToJson(d: HeatmapData): string {
  const j = (v: unknown) => JSON.stringify(v);
  const head: string[] = [
    `  "title": ${j(d.title)}`,
    `  "rowAxis": ${j(d.rowAxis)}`,
    `  "colAxis": ${j(d.colAxis)}`,
    `  "valueLabel": ${j(d.valueLabel)}`,
  ];
  if (d.zmax !== undefined) head.push(`  "zmax": ${j(d.zmax)}`);
  head.push(`  "rowLabels": ${j(d.rowLabels)}`, `  "colLabels": ${j(d.colLabels)}`);
  const rows = d.values.map((row) => `    ${j(row)}`).join(',\n');
  return `{\n${head.join(',\n')},\n  "values": [\n${rows}\n  ]\n}\n`;
}

export function xmlEscape(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] ?? c);
}

function n(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** Beyond this many cells the SVG draws one rect per plot pixel (binned like the canvas). */
const MAX_SVG_CELLS = 12_000;
/** Up to this many cells each rect carries a <title> with its exact value. */
const MAX_SVG_TITLES = 2_500;

/** A Painter that writes SVG elements. */
class SvgPainter implements Painter {
  readonly parts: string[] = [];
  private gradients = 0;
  constructor(private readonly values: readonly (readonly number[])[], private readonly theme: ChartTheme, private readonly zmax: number, private readonly scale: ScaleKind, private readonly zmin = 0) {}

  rect(x: number, y: number, w: number, h: number, fill: string): void {
    this.parts.push(`<rect x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}" fill="${xmlEscape(fill)}"/>`);
  }
  strokeRect(x: number, y: number, w: number, h: number, stroke: string, width: number): void {
    this.parts.push(`<rect x="${n(x)}" y="${n(y)}" width="${n(w)}" height="${n(h)}" fill="none" stroke="${xmlEscape(stroke)}" stroke-width="${width}"/>`);
  }
  line(x1: number, y1: number, x2: number, y2: number, stroke: string, width: number): void {
    this.parts.push(`<line x1="${n(x1)}" y1="${n(y1)}" x2="${n(x2)}" y2="${n(y2)}" stroke="${xmlEscape(stroke)}" stroke-width="${width}"/>`);
  }
  text(t: string, x: number, y: number, st: TextStyle): void {
    const rot = st.rotate ? ` transform="rotate(${st.rotate} ${n(x)} ${n(y)})"` : '';
    const weight = st.weight === 'bold' ? ' font-weight="bold"' : '';
    this.parts.push(
      `<text x="${n(x)}" y="${n(y)}" fill="${xmlEscape(st.fill)}" font-size="${st.size}" font-family="${xmlEscape(st.family)}"${weight} text-anchor="${st.align}" dominant-baseline="central"${rot}>${xmlEscape(t)}</text>`,
    );
  }
  cells(L: HeatmapLayout): void {
    const lut = makeLut(this.theme.palette, 255);
    const cells: string[] = [];
    const color = (r: number, g: number, b: number) => `rgb(${r},${g},${b})`;
    const titles = L.nRows * L.nCols <= MAX_SVG_TITLES;
    if (L.nRows * L.nCols <= MAX_SVG_CELLS) {
      for (let r = 0; r < L.nRows; r++) {
        for (let c = 0; c < L.nCols; c++) {
          const v = this.values[r]?.[c] ?? NaN;
          const t = scaleT(v, this.zmax, this.scale, this.zmin);
          const fill = Number.isNaN(t) ? cssRgb(lut.missing) : (() => {
            const i = lutIndex(lut, t) * 4;
            return color(lut.rgba[i] ?? 0, lut.rgba[i + 1] ?? 0, lut.rgba[i + 2] ?? 0);
          })();
          // Slight overlap hides anti-aliasing seams between neighbouring cells.
          cells.push(`<rect x="${n(L.plot.x + c * L.cellW)}" y="${n(L.plot.y + r * L.cellH)}" width="${n(L.cellW + 0.3)}" height="${n(L.cellH + 0.3)}" fill="${fill}">${titles ? `<title>${xmlEscape(`${r},${c}: ${String(v)}`)}</title>` : ''}</rect>`);
        }
      }
    } else {
      const w = Math.min(L.nCols, Math.max(1, Math.round(L.plot.w)));
      const h = Math.min(L.nRows, Math.max(1, Math.round(L.plot.h)));
      const px = rasterize(this.values, L.nRows, L.nCols, w, h, lut, this.zmax, this.scale, this.zmin);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const o = (y * w + x) * 4;
          cells.push(`<rect x="${n(L.plot.x + (x * L.plot.w) / w)}" y="${n(L.plot.y + (y * L.plot.h) / h)}" width="${n(L.plot.w / w + 0.3)}" height="${n(L.plot.h / h + 0.3)}" fill="${color(px[o] ?? 0, px[o + 1] ?? 0, px[o + 2] ?? 0)}"/>`);
        }
      }
    }
    this.parts.push(`<g class="cells" shape-rendering="crispEdges">${cells.join('')}</g>`);
  }
  colorRamp(r: Rect, stops: { offset: number; color: string }[]): void {
    const id = `ml-colorbar-${this.gradients++}`;
    const st = stops.map((s) => `<stop offset="${n(s.offset * 100)}%" stop-color="${s.color}"/>`).join('');
    this.parts.push(`<defs><linearGradient id="${id}" x1="0" y1="0" x2="0" y2="1">${st}</linearGradient></defs>`);
    this.parts.push(`<rect class="colorbar" x="${n(r.x)}" y="${n(r.y)}" width="${n(r.w)}" height="${n(r.h)}" fill="url(#${id})"/>`);
  }
}

export interface SvgOptions {
  scale?: ScaleKind;
  /** Figure width in px (default 800). */
  width?: number;
  square?: boolean;
  annotate?: boolean;
  theme?: ChartTheme;
  selected?: { row: number; col: number } | null;
}

/** A standalone SVG document of the heatmap: title, cells, axis labels and titles, colour bar with ticks. */
export function heatmapToSvg(d: HeatmapData, o: SvgOptions = {}): string {
  const theme = o.theme ?? PAPER_THEME;
  const scale = o.scale ?? 'diverging';
  const zmax = resolveZmax(d);
  const zmin = scale === 'sequential' ? resolveZmin(d, zmax) : 0;
  const L = computeLayout({
    nRows: d.values.length,
    nCols: d.values[0]?.length ?? d.colLabels.length,
    rowLabels: d.rowLabels,
    colLabels: d.colLabels,
    rowAxis: d.rowAxis,
    colAxis: d.colAxis,
    valueLabel: d.valueLabel,
    title: d.title,
    width: o.width ?? 800,
    fontSize: theme.fontSize,
    measure: estimateMeasure(theme.fontSize),
    scale,
    zmax,
    zmin,
    square: o.square ?? false,
    maxCell: 44,
    maxPlotHeight: 900,
    minRowHeight: 14,
  });
  const p = new SvgPainter(d.values, theme, zmax, scale, zmin);
  paintHeatmap(p, L, {
    theme,
    scale,
    zmax,
    zmin,
    rowAxis: d.rowAxis,
    colAxis: d.colAxis,
    valueLabel: d.valueLabel,
    annotate: o.annotate ?? false,
    values: d.values,
    selected: o.selected ?? null,
    background: true,
  });
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}" viewBox="0 0 ${L.width} ${L.height}">`,
    `<title>${xmlEscape(d.title)}</title>`,
    ...p.parts,
    '</svg>',
    '',
  ].join('\n');
}
