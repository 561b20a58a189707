/**
 * Attention view: every head of every layer as a thumbnail of its pattern (layers as rows,
 * heads as columns, L0H0...), one head large with token labels on both axes (query rows, key
 * columns), and a CircuitsVis-style token view: hover a token to colour the others by how much
 * it attends to them, or (reversed) by how much they attend to it.
 */
import type { AttentionState } from '../../protocol/webview.js';
import { type ChartTheme, makeLut } from '../colors.js';
import { Heatmap, context2d } from '../components/heatmap.js';
import { rasterize } from '../components/heatmapCore.js';
import { colorChip, quoteToken, tokenChip } from '../components/tokens.js';
import type { UiState, ViewContext } from '../context.js';
import { h, setChildren } from '../dom.js';
import { formatPercent, positionLabels } from '../format.js';
import { valueColor } from '../colors.js';
import { checkbox } from '../ui/controls.js';
import { panelHeader, section } from './common.js';

/** Thumbnails are at most this many pixels a side (long prompts are binned, keeping maxima). */
const THUMB_MAX_PX = 64;

export function headLabel(layer: number, head: number): string {
  return `L${layer}H${head}`;
}

/** Throws with a precise message when the state's arrays disagree with its declared sizes. */
export function validateAttention(st: AttentionState): void {
  const n = st.strTokens.length;
  if (st.patterns.length !== st.nLayers) throw new Error(`attention: patterns has ${st.patterns.length} layers, expected nLayers = ${st.nLayers}`);
  st.patterns.forEach((layer, l) => {
    if (layer.length !== st.nHeads) throw new Error(`attention: layer ${l} has ${layer.length} heads, expected nHeads = ${st.nHeads}`);
    layer.forEach((pat, hd) => {
      if (pat.length !== n || pat.some((row) => row.length !== n)) throw new Error(`attention: ${headLabel(l, hd)} is not ${n}×${n} (query_pos × key_pos for ${n} tokens)`);
    });
  });
}

/** Draws one pattern into a small canvas at ≤ THUMB_MAX_PX per side (no-op without canvas). */
export function drawThumbnail(canvas: HTMLCanvasElement, pattern: number[][], theme: ChartTheme): void {
  const n = pattern.length;
  const px = Math.max(1, Math.min(n, THUMB_MAX_PX));
  canvas.width = px;
  canvas.height = px;
  const ctx = context2d(canvas);
  if (!ctx) return;
  const img = ctx.createImageData(px, px);
  img.data.set(rasterize(pattern, n, n, px, px, makeLut(theme.palette, 255), 1, 'sequential'));
  ctx.putImageData(img, 0, 0);
}

type AttnUi = NonNullable<UiState['attention']>;

export function renderAttention(st: AttentionState, ctx: ViewContext): HTMLElement {
  validateAttention(st);
  const { doc, theme } = ctx;
  const saved = ctx.ui.get('attention');
  const ui: AttnUi = {
    layer: saved && saved.layer < st.nLayers ? saved.layer : 0,
    head: saved && saved.head < st.nHeads ? saved.head : 0,
    reverse: saved?.reverse ?? false,
    pinned: saved?.pinned !== null && saved?.pinned !== undefined && saved.pinned < st.strTokens.length ? saved.pinned : null,
  };
  const persist = () => ctx.ui.set('attention', { ...ui });
  const meanNote = st.meanOver > 1 ? `mean over ${st.meanOver} prompts` : null;

  // --- Grid of thumbnails -------------------------------------------------------------------
  const grid = h(doc, 'div', { class: 'ml-attn-grid', role: 'grid', 'aria-label': 'attention heads' });
  grid.style.gridTemplateColumns = `auto repeat(${st.nHeads}, minmax(14px, 40px))`;
  grid.appendChild(h(doc, 'span'));
  for (let hd = 0; hd < st.nHeads; hd++) grid.appendChild(h(doc, 'span', { class: 'ml-attn-collabel' }, `H${hd}`));
  const thumbs: HTMLButtonElement[][] = [];
  for (let l = 0; l < st.nLayers; l++) {
    grid.appendChild(h(doc, 'span', { class: 'ml-attn-rowlabel' }, `L${l}`));
    const row: HTMLButtonElement[] = [];
    for (let hd = 0; hd < st.nHeads; hd++) {
      const canvas = h(doc, 'canvas', { class: 'ml-thumb-canvas' });
      drawThumbnail(canvas, st.patterns[l]?.[hd] ?? [], theme);
      const b = h(doc, 'button', { type: 'button', class: 'ml-thumb', title: `${headLabel(l, hd)}: click to show large`, 'aria-label': headLabel(l, hd), 'data-layer': l, 'data-head': hd }, canvas);
      b.addEventListener('click', () => select(l, hd, true));
      row.push(b);
      grid.appendChild(b);
    }
    thumbs.push(row);
  }

  // --- The selected head: large pattern and token view ------------------------------------
  const detail = h(doc, 'div', { class: 'ml-attn-detail' });
  const labels = positionLabels(st.strTokens);

  const renderDetail = () => {
    const pattern = st.patterns[ui.layer]?.[ui.head] ?? [];
    const title = `${headLabel(ui.layer, ui.head)} attention pattern${meanNote ? ` (${meanNote})` : ''}`;
    const hm = new Heatmap(
      { doc, theme, host: ctx.host, disposables: ctx.disposables },
      {
        data: { title, rowAxis: 'query position', colAxis: 'key position', rowLabels: labels, colLabels: labels, values: pattern, valueLabel: 'attention probability', zmax: 1 },
        context: `${JSON.stringify((st.prompts[0] ?? '').length > 60 ? `${(st.prompts[0] ?? '').slice(0, 57)}…` : (st.prompts[0] ?? ''))}${st.prompts.length > 1 ? ` (+${st.prompts.length - 1})` : ''} · ${st.model}`,
        scale: 'sequential',
        valueFormat: 'percent',
        square: true,
        maxCell: 36,
        fileStem: `attention-${headLabel(ui.layer, ui.head)}`,
      },
    );
    setChildren(detail, hm.el, tokenView(pattern));
  };

  const tokenView = (pattern: number[][]): HTMLElement => {
    const chips = st.strTokens.map((t, i) => tokenChip(doc, t, { index: i }));
    const note = h(doc, 'p', { class: 'ml-note' });
    const strip = h(doc, 'div', { class: 'ml-tokens ml-attn-tokens' }, ...chips);
    const describe = () => {
      note.textContent = ui.reverse ? 'Hover a token: the others are coloured by how much they attend to it (click to pin).' : 'Hover a token: the others are coloured by how much it attends to them (click to pin).';
    };
    const paint = (focus: number | null) => {
      chips.forEach((chip, j) => {
        chip.classList.toggle('ml-token-focus', j === focus);
        chip.classList.toggle('ml-token-pinned', j === ui.pinned);
        if (focus === null) {
          colorChip(chip, null);
          chip.title = `position ${j} ${quoteToken(st.strTokens[j] ?? '')}`;
          return;
        }
        // pattern[query][key]: forward = focus is the query; reverse = focus is the key.
        const v = ui.reverse ? (pattern[j]?.[focus] ?? 0) : (pattern[focus]?.[j] ?? 0);
        colorChip(chip, valueColor(v, 1, theme.palette, 'sequential'));
        chip.title = ui.reverse ? `${quoteToken(st.strTokens[j] ?? '')} → ${quoteToken(st.strTokens[focus] ?? '')}: ${formatPercent(v)}` : `${quoteToken(st.strTokens[focus] ?? '')} → ${quoteToken(st.strTokens[j] ?? '')}: ${formatPercent(v)}`;
      });
    };
    chips.forEach((chip, i) => {
      chip.tabIndex = 0;
      chip.addEventListener('mouseenter', () => paint(i));
      chip.addEventListener('focus', () => paint(i));
      chip.addEventListener('mouseleave', () => paint(ui.pinned));
      chip.addEventListener('click', () => {
        ui.pinned = ui.pinned === i ? null : i;
        persist();
        paint(ui.pinned ?? i);
      });
    });
    const toggle = checkbox(doc, {
      label: 'Reverse direction',
      checked: ui.reverse,
      title: 'Colour by how much each token attends to the hovered one (key view) instead of where the hovered token attends (query view)',
      onChange: (v) => {
        ui.reverse = v;
        persist();
        describe();
        paint(ui.pinned);
      },
    });
    describe();
    paint(ui.pinned);
    const sec = section(doc, 'Tokens', null, h(doc, 'div', { class: 'ml-toolbar' }, toggle), note, strip);
    sec.classList.add('ml-attn-token-view');
    return sec;
  };

  function select(layer: number, head: number, notify: boolean): void {
    thumbs[ui.layer]?.[ui.head]?.classList.remove('ml-selected');
    ui.layer = layer;
    ui.head = head;
    const b = thumbs[layer]?.[head];
    b?.classList.add('ml-selected');
    b?.setAttribute('aria-pressed', 'true');
    persist();
    renderDetail();
    if (notify) ctx.host.selectHead(layer, head);
  }
  thumbs[ui.layer]?.[ui.head]?.classList.add('ml-selected');
  renderDetail();

  const promptList = st.prompts.length > 1 ? h(doc, 'details', { class: 'ml-prompts' }, h(doc, 'summary', undefined, `${st.prompts.length} prompts`), h(doc, 'ol', undefined, ...st.prompts.map((p) => h(doc, 'li', { class: 'ml-prompt' }, p)))) : st.prompts[0] !== undefined ? h(doc, 'div', { class: 'ml-prompt' }, st.prompts[0]) : null;

  return h(
    doc,
    'div',
    { class: 'ml-view ml-attention' },
    panelHeader(doc, 'Attention patterns', st.model, meanNote ? h(doc, 'span', { class: 'ml-badge ml-badge-accent', title: 'patterns are averaged over the prompts (same length); token labels are from the first' }, meanNote) : null),
    promptList,
    h(
      doc,
      'div',
      { class: 'ml-columns' },
      h(doc, 'div', { class: 'ml-column ml-column-narrow' }, section(doc, 'All heads', `${st.nLayers} layers × ${st.nHeads} heads · rows: query, columns: key`, grid)),
      h(doc, 'div', { class: 'ml-column' }, detail),
    ),
  );
}
