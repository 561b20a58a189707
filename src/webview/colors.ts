/**
 * Colour scales and the chart theme read from VS Code's CSS variables.
 *
 * Heatmaps use a diverging scale centred at 0 (negative blue, positive red: ColorBrewer RdBu
 * reversed, the colours researchers know from `px.imshow(..., color_continuous_scale="RdBu")`,
 * with the sign convention of CircuitsVis/most papers: red = increases the metric).
 * In dark themes the neutral end is a dark grey instead of near-white, and magnitude grows
 * brighter, so that a sparse map (a few important heads) reads as a few lit cells instead of a
 * glaring white block; exports always use the light "paper" palette.
 */

export type RGB = readonly [number, number, number];

export interface Palette {
  name: 'light' | 'dark';
  /** Piecewise-linear stops over t in [-1, 1]; t = value / zmax; the stop at 0 is the neutral. */
  stops: ReadonlyArray<readonly [t: number, rgb: RGB]>;
  /** NaN / missing cells. */
  missing: RGB;
}

/** ColorBrewer RdBu (11 classes), reversed so that negative is blue and positive is red. */
export const LIGHT_PALETTE: Palette = {
  name: 'light',
  stops: [
    [-1, [5, 48, 97]],
    [-0.8, [33, 102, 172]],
    [-0.6, [67, 147, 195]],
    [-0.4, [146, 197, 222]],
    [-0.2, [209, 229, 240]],
    [0, [247, 247, 247]],
    [0.2, [253, 219, 199]],
    [0.4, [244, 165, 130]],
    [0.6, [214, 96, 77]],
    [0.8, [178, 24, 43]],
    [1, [103, 0, 31]],
  ],
  missing: [200, 200, 200],
};

/** Dark-centred twin of RdBu: |value| maps to brightness and saturation on a dark neutral. */
export const DARK_PALETTE: Palette = {
  name: 'dark',
  stops: [
    [-1, [140, 200, 255]],
    [-0.75, [70, 150, 230]],
    [-0.5, [40, 100, 180]],
    [-0.25, [35, 60, 105]],
    [0, [44, 44, 48]],
    [0.25, [105, 40, 40]],
    [0.5, [175, 50, 45]],
    [0.75, [230, 90, 65]],
    [1, [255, 160, 120]],
  ],
  missing: [80, 80, 80],
};

export function neutral(p: Palette): RGB {
  for (const [t, c] of p.stops) if (t === 0) return c;
  return colorAt(p, 0);
}

/** Colour at t in [-1, 1] (clamped; NaN -> missing). */
export function colorAt(p: Palette, t: number): RGB {
  if (Number.isNaN(t)) return p.missing;
  const stops = p.stops;
  const first = stops[0];
  const last = stops[stops.length - 1];
  if (!first || !last) return p.missing;
  if (t <= first[0]) return first[1];
  if (t >= last[0]) return last[1];
  for (let i = 1; i < stops.length; i++) {
    const b = stops[i];
    const a = stops[i - 1];
    if (!a || !b || t > b[0]) continue;
    const f = (t - a[0]) / (b[0] - a[0]);
    return [lerp(a[1][0], b[1][0], f), lerp(a[1][1], b[1][1], f), lerp(a[1][2], b[1][2], f)];
  }
  return last[1];
}

function lerp(a: number, b: number, f: number): number {
  return Math.round(a + (b - a) * f);
}

/**
 * How a value maps to t in [-1, 1]:
 *  - 'diverging' (default): t = value / zmax, clamped; 0 is always the neutral colour;
 *  - 'sequential': for non-negative data such as attention probabilities, t = value / zmax in
 *    [0, 1] (the red half), so 0 is neutral and zmax is the strongest red; with a floor zmin
 *    (a baseline such as the corrupted run's probability), t = (value - zmin) / (zmax - zmin).
 * zmax <= 0 or non-finite maps everything to neutral (an all-zero map stays blank, not noisy).
 */
export type ScaleKind = 'diverging' | 'sequential';

export function scaleT(value: number, zmax: number, kind: ScaleKind = 'diverging', zmin = 0): number {
  if (Number.isNaN(value)) return NaN;
  // A sequential scale may start above 0 (causal tracing starts at the corrupted run's value).
  if (kind === 'sequential' && zmin !== 0 && Number.isFinite(zmin) && zmin < zmax) {
    const t = (value - zmin) / (zmax - zmin);
    return t < 0 ? 0 : t > 1 ? 1 : t;
  }
  if (!(zmax > 0) || !Number.isFinite(zmax)) return 0;
  const t = value / zmax;
  const lo = kind === 'sequential' ? 0 : -1;
  return t < lo ? lo : t > 1 ? 1 : t;
}

export function valueColor(value: number, zmax: number, p: Palette, kind: ScaleKind = 'diverging', zmin = 0): RGB {
  return colorAt(p, scaleT(value, zmax, kind, zmin));
}

/**
 * A lookup table of `n` colours over t in [-1, 1] (RGBA bytes), so drawing 3072×12 cells costs
 * one multiply and an index per cell. Index for t: Math.round((t + 1) / 2 * (n - 1)).
 */
export interface ColorLut {
  n: number;
  rgba: Uint8ClampedArray;
  missing: RGB;
}

export function makeLut(p: Palette, n = 1023): ColorLut {
  const rgba = new Uint8ClampedArray(n * 4);
  for (let i = 0; i < n; i++) {
    const c = colorAt(p, (i / (n - 1)) * 2 - 1);
    rgba[i * 4] = c[0];
    rgba[i * 4 + 1] = c[1];
    rgba[i * 4 + 2] = c[2];
    rgba[i * 4 + 3] = 255;
  }
  return { n, rgba, missing: p.missing };
}

export function lutIndex(lut: ColorLut, t: number): number {
  return Math.round(((t + 1) / 2) * (lut.n - 1));
}

export function cssRgb(c: RGB): string {
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

export function hexRgb(c: RGB): string {
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

/** WCAG relative luminance in [0, 1]. */
export function luminance(c: RGB): number {
  const ch = (v: number) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * ch(c[0]) + 0.7152 * ch(c[1]) + 0.0722 * ch(c[2]);
}

/** Black or white text, whichever contrasts more with `bg`. */
export function textOn(bg: RGB): string {
  return luminance(bg) > 0.22 ? '#111111' : '#f5f5f5';
}

/** Parses '#rgb', '#rrggbb', '#rrggbbaa' and 'rgb(a)(r, g, b[, a])'; null otherwise. */
export function parseColor(s: string): RGB | null {
  const t = s.trim();
  let m = /^#([0-9a-f]{3})$/i.exec(t);
  if (m?.[1]) {
    const h = m[1];
    return [0, 1, 2].map((i) => parseInt(h.charAt(i).repeat(2), 16)) as unknown as RGB;
  }
  m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(t);
  if (m?.[1]) {
    const h = m[1];
    return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)) as unknown as RGB;
  }
  m = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/i.exec(t);
  if (m?.[1] && m[2] && m[3]) return [Number(m[1]), Number(m[2]), Number(m[3])];
  return null;
}

// ---------------------------------------------------------------------------------------------
// Theme

/** Everything a canvas/SVG drawing needs from the current VS Code theme. */
export interface ChartTheme {
  dark: boolean;
  /** Text, axes. */
  fg: string;
  /** Secondary text (ticks, axis titles). */
  muted: string;
  bg: string;
  /** Hairlines (frames, gridlines). */
  grid: string;
  /** Focus / selection outline. */
  accent: string;
  /** UI font family (titles, axes) and the editor's font (tokens). */
  font: string;
  mono: string;
  /** Base font size in CSS px. */
  fontSize: number;
  palette: Palette;
}

/** The theme used for exported figures: white paper, dark text, RdBu. */
export const PAPER_THEME: ChartTheme = {
  dark: false,
  fg: '#1f1f1f',
  muted: '#555555',
  bg: '#ffffff',
  grid: '#d0d0d0',
  accent: '#0066bf',
  font: 'system-ui, -apple-system, "Segoe UI", Ubuntu, sans-serif',
  mono: 'Menlo, Consolas, "DejaVu Sans Mono", monospace',
  fontSize: 12,
  palette: LIGHT_PALETTE,
};

const DARK_DEFAULTS: ChartTheme = {
  ...PAPER_THEME,
  dark: true,
  fg: '#cccccc',
  muted: '#9d9d9d',
  bg: '#1f1f1f',
  grid: '#454545',
  accent: '#0078d4',
  palette: DARK_PALETTE,
};

/** Whether VS Code says the theme is dark (body class), else guessed from the background. */
export function isDarkTheme(doc: Document, bg?: string): boolean {
  const cl = doc.body?.classList;
  if (cl?.contains('vscode-light') || cl?.contains('vscode-high-contrast-light')) return false;
  if (cl?.contains('vscode-dark') || cl?.contains('vscode-high-contrast')) return true;
  const c = bg ? parseColor(bg) : null;
  return c ? luminance(c) < 0.3 : false;
}

/**
 * Reads the theme from the document's computed CSS variables (VS Code sets them on <html>);
 * missing variables (jsdom, tests) fall back to defaults for the detected light/dark kind.
 */
export function readTheme(doc: Document): ChartTheme {
  const win = doc.defaultView;
  const el = doc.body ?? doc.documentElement;
  const cs = win && el ? win.getComputedStyle(el) : null;
  const v = (name: string): string => (cs?.getPropertyValue(name) ?? '').trim();
  const bg = v('--vscode-editor-background');
  const dark = isDarkTheme(doc, bg);
  const base = dark ? DARK_DEFAULTS : { ...PAPER_THEME, bg: '#ffffff' };
  const size = parseFloat(v('--vscode-font-size'));
  return {
    dark,
    fg: v('--vscode-editor-foreground') || v('--vscode-foreground') || base.fg,
    muted: v('--vscode-descriptionForeground') || base.muted,
    bg: bg || base.bg,
    grid: v('--vscode-charts-lines') || v('--vscode-panel-border') || base.grid,
    accent: v('--vscode-focusBorder') || base.accent,
    font: v('--vscode-font-family') || base.font,
    mono: v('--vscode-editor-font-family') || base.mono,
    fontSize: Number.isFinite(size) && size > 6 ? Math.min(size - 1, 14) : base.fontSize,
    palette: dark ? DARK_PALETTE : LIGHT_PALETTE,
  };
}
