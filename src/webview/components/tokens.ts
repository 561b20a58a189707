/**
 * Tokens as the model split them: chips in the editor font, whitespace drawn visibly (' Mary'
 * shows a dimmed '·' before 'Mary', '\n' a '⏎'), optionally coloured by a value per token.
 */
import { type ChartTheme, type RGB, type ScaleKind, cssRgb, textOn, valueColor } from '../colors.js';
import { h } from '../dom.js';
import { tokenPieces } from '../format.js';

export interface TokenChipOptions {
  /** Position in the sequence, shown as a small subscript when `showIndex`. */
  index?: number;
  showIndex?: boolean;
  /** Background colour; the text colour is chosen for contrast. Default: the theme's chip colour. */
  color?: RGB | null;
  /** Hover text. Default: position, token text in quotes, token id when known. */
  title?: string;
  /** Vocabulary id, shown in the default hover. */
  id?: number;
}

/** JSON-style quoting for hovers: shows ' Mary' as "' Mary'" and '\n' as "'\\n'". */
export function quoteToken(s: string): string {
  return `'${JSON.stringify(s).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'")}'`;
}

export function tokenChip(doc: Document, str: string, o: TokenChipOptions = {}): HTMLSpanElement {
  const chip = h(doc, 'span', { class: 'ml-token' });
  const pieces = tokenPieces(str);
  // Markers are dimmed next to text (' Mary'); a token that is only whitespace ('\n') shows them plainly.
  const dim = pieces.some((p) => !p.ws);
  for (const p of pieces) chip.appendChild(p.ws && dim ? h(doc, 'span', { class: 'ml-ws' }, p.text) : doc.createTextNode(p.text));
  if (!dim) chip.classList.add('ml-token-ws');
  if (o.showIndex && o.index !== undefined) chip.appendChild(h(doc, 'sub', { class: 'ml-token-index' }, o.index));
  if (o.index !== undefined) chip.dataset.index = String(o.index);
  chip.title = o.title ?? [o.index !== undefined ? `position ${o.index}` : '', quoteToken(str), o.id !== undefined ? `id ${o.id}` : ''].filter(Boolean).join('  ');
  if (o.color) colorChip(chip, o.color);
  return chip;
}

/** Sets a chip's background (via CSSOM, which the webview CSP allows) and a readable text colour. */
export function colorChip(chip: HTMLElement, c: RGB | null): void {
  if (!c) {
    chip.style.backgroundColor = '';
    chip.style.color = '';
    chip.classList.remove('ml-token-colored');
    return;
  }
  chip.style.backgroundColor = cssRgb(c);
  chip.style.color = textOn(c);
  chip.classList.add('ml-token-colored');
}

/**
 * A wrapping row of token chips.
 * - tokens: string per position (TransformerLens str_tokens order);
 * - values: optional number per position (null/NaN = uncoloured), coloured with `scale` over ±zmax
 *   (default max |value|);
 * - titles: optional hover text per position.
 */
export interface TokenStripProps {
  tokens: string[];
  ids?: number[];
  showIndex?: boolean;
  values?: (number | null)[];
  zmax?: number;
  scale?: ScaleKind;
  titles?: string[];
  /** Index of the first token shown (when a strip shows only the tail of a prompt). Default 0. */
  offset?: number;
}

export function tokenStrip(doc: Document, theme: ChartTheme, p: TokenStripProps): HTMLDivElement {
  const strip = h(doc, 'div', { class: 'ml-tokens' });
  const finite = (p.values ?? []).filter((v): v is number => v !== null && Number.isFinite(v));
  const zmax = p.zmax ?? Math.max(1e-9, ...finite.map(Math.abs));
  const offset = p.offset ?? 0;
  p.tokens.forEach((t, i) => {
    const v = p.values?.[i];
    const color = v !== null && v !== undefined && Number.isFinite(v) ? valueColor(v, zmax, theme.palette, p.scale ?? 'sequential') : null;
    const title = p.titles?.[i];
    strip.appendChild(tokenChip(doc, t, { index: i + offset, showIndex: p.showIndex, color, id: p.ids?.[i], ...(title !== undefined ? { title } : {}) }));
  });
  return strip;
}
